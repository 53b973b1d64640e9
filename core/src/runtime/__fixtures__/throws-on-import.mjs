throw new Error('kaboom at import');
