// of-watchdog's Node.js upstream for the ofw-node row (bench/run.sh): what
// OpenFaaS's node templates run behind of-watchdog in http mode, reduced to
// node:http. A keep-alive HTTP server on 127.0.0.1:$UPSTREAM_PORT that reads
// the request body, parses it as JSON as the templates do, calls an async
// no-op handler and answers its result as JSON with a 200.
'use strict';

const http = require('node:http');

const handler = async (event, context) => ({});

const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
        try {
            const raw = Buffer.concat(chunks).toString();
            const event = { body: raw.length ? JSON.parse(raw) : {}, headers: req.headers,
                            method: req.method, path: req.url };
            const result = await handler(event, {});
            const body = JSON.stringify(result);
            res.writeHead(200, { 'Content-Type': 'application/json',
                                 'Content-Length': Buffer.byteLength(body) });
            res.end(body);
        } catch (e) {
            res.writeHead(500, { 'Content-Type': 'text/plain' });
            res.end(String(e));
        }
    });
});
server.keepAliveTimeout = 300000;
server.listen(Number(process.env.UPSTREAM_PORT), '127.0.0.1');
