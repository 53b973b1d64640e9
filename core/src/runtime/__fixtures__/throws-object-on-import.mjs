// A plugin module that throws something that is not an Error.
throw { reason: 'no licence key', code: 42 };
