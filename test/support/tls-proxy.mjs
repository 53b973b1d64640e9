// A TLS front for the lab's plain-HTTP API server, as a real API server speaks: what an agent's in-cluster
// credentials (https://$KUBERNETES_SERVICE_HOST, the service account's ca.crt) need. Run it in the lab's api
// namespace: `node tls-proxy.mjs LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT KEY CERT`. Every TLS connection is
// piped to the target; it stops on SIGTERM.
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import process from 'node:process';
import { createServer } from 'node:tls';

const [host, port, targetHost, targetPort, key, cert] = process.argv.slice(2);
const server = createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (client) => {
  const upstream = connect(Number(targetPort), targetHost);
  client.pipe(upstream).pipe(client);
  const close = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', close);
  upstream.on('error', close);
});
server.listen(Number(port), host, () => process.stdout.write(`tls-proxy: ${host}:${port} -> ${targetHost}:${targetPort}\n`));
process.once('SIGTERM', () => server.close(() => process.exit(0)));
