// Reference echo server on Node `ws`: every message back to its sender,
// same opcode.  `--port N` (0 picks a free port), `--backlog N` (the
// accept queue; bench/run.py gives it ours, somaxconn); prints "listening N".
'use strict';
const path = require('path');
const WebSocketServer = require(path.join(__dirname, '..', 'node_modules', 'ws')).Server;

const option = (name, otherwise) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : otherwise;
};
const wsserver = new WebSocketServer({
  port: option('--port', 0), host: '127.0.0.1', backlog: option('--backlog', 511),
  perMessageDeflate: false,
});
wsserver.on('connection', (client) => {
  client.on('message', (message, isBinary) => client.send(message, { binary: isBinary }));
});
wsserver.on('listening', () => console.log(`listening ${wsserver.address().port}`));
