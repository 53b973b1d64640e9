// The service-tunnel tests' server and client, run with the test's own Node inside lab namespaces (no other program).
//
//   serve NAME PORT [VIP...]        TCP (any address) and UDP (on each VIP) on PORT: every line or datagram is answered
//                                   "NAME PEER LOCAL\n" — which pod answered, the client address it saw, the address reached
//   once HOST PORT tcp|udp          one request; prints the answer
//   bulk HOST PORT BYTES            one TCP line of BYTES bytes (full-size segments: the tunnel's overhead must be
//                                   handled — path MTU discovery or fragments); prints the answer, sent once all arrived
//   spread HOST PORT N              N connections one after the other; prints {"<pod>": count, ...}
//   streams HOST PORT N             N long-lived connections, each asking every 200 ms; prints "ready" once each has
//                                   an answer, and on "stop" (stdin) a JSON line per stream: {"pods": [...], "error"}
import { createSocket } from 'node:dgram';
import { clearInterval, clearTimeout, setInterval } from 'node:timers';
import { createConnection, createServer } from 'node:net';
import { createInterface } from 'node:readline';

const [mode, ...args] = process.argv.slice(2);

/** The lines of a socket; its errors are the socket's to report (readline would re-emit them unhandled). */
function lines(socket) {
  const rl = createInterface({ input: socket });
  rl.on('error', () => undefined);
  return rl;
}

function serve(name, port, vips) {
  const tcp = createServer((socket) => {
    socket.setNoDelay(true);
    socket.on('error', () => undefined);
    // readline re-emits the socket's errors (a client's reset): handled, or the server dies with the first one.
    lines(socket).on('line', () => socket.write(`${name} ${socket.remoteAddress} ${socket.localAddress}\n`));
  });
  tcp.listen(port, '0.0.0.0');
  // UDP on each VIP (so that answers leave from the VIP, as a UDP service behind a VIP must), bound once the VIP is
  // there (the agent puts it on the pod's GRE device).
  for (const vip of vips.length > 0 ? vips : ['0.0.0.0']) {
    const bind = () => {
      const udp = createSocket('udp4');
      udp.on('error', () => {
        udp.close();
        setTimeout(bind, 200);
      });
      udp.on('message', (_msg, rinfo) => udp.send(`${name} ${rinfo.address} ${vip}\n`, rinfo.port, rinfo.address));
      udp.bind(port, vip);
    };
    bind();
  }
}

function once(host, port, proto) {
  if (proto !== 'udp') return ask(host, port, 'hello\n', 5000);
  const timer = setTimeout(() => {
    console.log('timeout');
    process.exit(2);
  }, 5000);
  const s = createSocket('udp4');
  s.on('message', (m) => {
    process.stdout.write(String(m));
    clearTimeout(timer);
    s.close();
  });
  s.send(host, port, host);
}

/** One TCP request: prints the answer line (or how it failed) and ends. */
function ask(host, port, text, ms) {
  const timer = setTimeout(() => {
    console.log('timeout');
    process.exit(2);
  }, ms);
  const c = createConnection({ host, port }, () => c.write(text));
  c.on('error', (e) => {
    console.log(`error ${e.code ?? e.message}`);
    process.exit(1);
  });
  lines(c).once('line', (line) => {
    console.log(line);
    clearTimeout(timer);
    c.destroy();
  });
}

function bulk(host, port, bytes) {
  ask(host, port, `${'x'.repeat(bytes)}\n`, 30_000);
}

async function spread(host, port, n) {
  const counts = {};
  for (let i = 0; i < n; i++) {
    const pod = await new Promise((resolve) => {
      const c = createConnection({ host, port }, () => c.write('x\n'));
      const t = setTimeout(() => (c.destroy(), resolve('timeout')), 5000);
      c.on('error', (e) => (clearTimeout(t), resolve(`error-${e.code ?? 'x'}`)));
      lines(c).once('line', (line) => {
        clearTimeout(t);
        c.destroy();
        resolve(line.split(' ')[0]);
      });
    });
    counts[pod] = (counts[pod] ?? 0) + 1;
  }
  console.log(JSON.stringify(counts));
}

function streams(host, port, n) {
  const all = [];
  let ready = 0;
  for (let i = 0; i < n; i++) {
    const s = { pods: [], error: undefined, pending: 0, socket: undefined };
    all.push(s);
    const c = createConnection({ host, port });
    s.socket = c;
    c.setNoDelay(true);
    c.on('error', (e) => {
      s.error ??= e.code ?? e.message;
    });
    c.on('close', () => {
      s.error ??= 'closed';
    });
    lines(c).on('line', (line) => {
      const pod = line.split(' ')[0];
      if (s.pods.length === 0 && ++ready === n) console.log('ready');
      if (s.pods.at(-1) !== pod) s.pods.push(pod);
      s.pending = 0;
    });
    const ask = setInterval(() => {
      if (s.error !== undefined) return clearInterval(ask);
      // Five questions without an answer (a second): the stream is stuck.
      if (++s.pending > 5) s.error ??= 'stalled';
      c.write('q\n');
    }, 200);
    s.timer = ask;
  }
  createInterface({ input: process.stdin }).on('line', (line) => {
    if (line.trim() !== 'stop') return;
    for (const s of all) {
      clearInterval(s.timer);
      console.log(JSON.stringify({ pods: s.pods, ...(s.error !== undefined ? { error: s.error } : {}) }));
      s.socket.destroy();
    }
    process.exit(0);
  });
}

if (mode === 'serve') serve(args[0], Number(args[1]), args.slice(2));
else if (mode === 'once') once(args[0], Number(args[1]), args[2]);
else if (mode === 'bulk') bulk(args[0], Number(args[1]), Number(args[2]));
else if (mode === 'spread') await spread(args[0], Number(args[1]), Number(args[2]));
else if (mode === 'streams') streams(args[0], Number(args[1]), Number(args[2]));
else {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
