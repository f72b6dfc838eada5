// Reference echo server on Node `ws`: every message back to its sender,
// same opcode.  `--port N` (0 picks a free port); prints "listening N".
'use strict';
const path = require('path');
const WebSocketServer = require(path.join(__dirname, '..', 'node_modules', 'ws')).Server;

const i = process.argv.indexOf('--port');
const port = i > 0 ? Number(process.argv[i + 1]) : 0;
const wsserver = new WebSocketServer({ port, host: '127.0.0.1', perMessageDeflate: false });
wsserver.on('connection', (client) => {
  client.on('message', (message, isBinary) => client.send(message, { binary: isBinary }));
});
wsserver.on('listening', () => console.log(`listening ${wsserver.address().port}`));
