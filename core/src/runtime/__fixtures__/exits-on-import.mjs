// A plugin module that is really a script: it ends the process as soon as it is imported.
process.exit(0);
