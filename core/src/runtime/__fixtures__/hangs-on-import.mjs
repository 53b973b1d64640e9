// A plugin module whose top-level await never settles (and holds a timer, so the process would stay alive).
await new Promise((resolve) => setTimeout(resolve, 3_600_000));
export default undefined;
