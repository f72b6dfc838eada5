// The reference: the classic Node `ws` broadcast server from the course
// notes (shared/seeds/000), adapted to this `ws` version and to --port.
// Changes from the seed, and why:
//   - `--port N` (0 picks a free port) instead of the fixed 60000, and a
//     "listening N" line so bench/run.py can find it;
//   - `--backlog N`: bench/run.py gives it the accept queue our service has
//     (somaxconn), so a connection storm does not measure Node's default 511;
//   - ws 8 hands over a Buffer and an isBinary flag: the frame is relayed
//     unchanged with the same opcode (text stays text);
//   - iterates `wsserver.clients` (a Set in ws >= 2, so `for..of`, not the
//     seed's `for..in` over an array);
//   - no per-message console.log: our service does not log per message
//     either, and a synchronous write per message would measure the
//     terminal, not the WebSocket path.
// Everything else is the seed: every message goes to every client, sender
// included, and each newcomer gets {name: "", message: "Connected!"}.
'use strict';
const path = require('path');
const WebSocketServer = require(path.join(__dirname, '..', 'node_modules', 'ws')).Server;

const option = (name, otherwise) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : otherwise;
};
const wsserver = new WebSocketServer({
  port: option('--port', 60000), host: '127.0.0.1', backlog: option('--backlog', 511),
  perMessageDeflate: false,
});

wsserver.on('connection', function (client) {
  client.on('message', function (message, isBinary) {
    for (const c of wsserver.clients) {
      c.send(message, { binary: isBinary });
    }
  });
  client.send(JSON.stringify({ name: '', message: 'Connected!' }));
});
wsserver.on('listening', () => console.log(`listening ${wsserver.address().port}`));
