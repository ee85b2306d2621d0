// Drives one Node SDK against the gateway: identify/track/page/alias per user, then flush.
// Usage: node node_clients.js '{"sdk": "segment"|"rudder", "host": URL, "writeKey": K, "users": [...]}'
// Exits non-zero when the SDK reports an error; the test checks what the gateway stored.
'use strict';

const config = JSON.parse(process.argv[2]);
const errors = [];

function calls(client, user) {
  const email = user + '@example.com';
  client.identify({ userId: user, anonymousId: 'anon-' + user, traits: { email: email } });
  client.track({ userId: user, event: 'Signed Up', properties: { plan: 'Pro' },
                 context: { traits: { email: email } } });
  client.page({ userId: user, name: 'Docs', properties: { path: '/docs' } });
  client.alias({ userId: user, previousId: 'anon-' + user });
}

async function segment() {
  const { Analytics } = require('@segment/analytics-node');
  const client = new Analytics({ writeKey: config.writeKey, host: config.host, flushAt: 5,
                                 flushInterval: 200, maxRetries: 6 });
  client.on('error', (err) => errors.push(String(err && (err.reason || err.code || err))));
  config.users.forEach((user) => calls(client, user));
  await client.closeAndFlush({ timeout: 60000 });
}

async function rudder() {
  const Analytics = require('@rudderstack/rudder-sdk-node');
  const client = new Analytics(config.writeKey, {
    dataPlaneUrl: config.host, flushAt: 5, flushInterval: 200, retryCount: 6, logLevel: 'error',
    errorHandler: (err) => errors.push(String(err)),
  });
  config.users.forEach((user) => calls(client, user));
  await client.flush();
}

(config.sdk === 'segment' ? segment : rudder)().then(
  () => {
    if (errors.length) { console.error(JSON.stringify(errors)); process.exit(1); }
  },
  (err) => { console.error(String(err && err.stack || err)); process.exit(2); },
);
