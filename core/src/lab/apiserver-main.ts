/**
 * The lab's API server as a process: `node apiserver-main.js <lab dir>`, started by `weft lab up --discovery
 * kubernetes` inside the lab's `api` namespace. It reads its token from `<lab dir>/api-token`, listens on the lab's
 * API address and on `<lab dir>/api.sock` for the lab's orders (see serveLabApi), and stops on SIGTERM or SIGINT.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { serveLabApi } from './apiserver.js';
import { LAB_API } from './topology.js';

const dir = process.argv[2];
if (dir === undefined) {
  process.stderr.write('usage: apiserver-main.js <lab dir>\n');
  process.exit(2);
}
const token = (await readFile(join(dir, 'api-token'), 'utf8')).trim();
const server = await serveLabApi({ host: LAB_API.address, port: LAB_API.port, token, controlSocket: join(dir, 'api.sock') });
process.stdout.write(`lab API server: serving http://${LAB_API.address}:${String(LAB_API.port)}, control ${join(dir, 'api.sock')}\n`);
const stop = () => {
  server.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
