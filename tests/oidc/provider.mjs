// A real OpenID provider (the npm package oidc-provider) for jwt_wsgi's interoperability tests.
//
//   node provider.mjs PORT CLIENT_SECRET
//
// Issuer http://127.0.0.1:PORT (discovery at /.well-known/openid-configuration, keys at /jwks).
// One confidential client, "jwt-wsgi-tests" with CLIENT_SECRET (client_secret_post), may use the
// client credentials grant with a resource indicator (RFC 8707). Each resource is an API that
// gets JWT access tokens (typ at+jwt, RFC 9068) with aud = the resource, signed with:
//   https://api.test/rs256  -> RS256      https://api.test/es256  -> ES256
// Scopes: "read write". Every token also carries email = robot@api.test.
//
// Key rotation on demand: POST /admin/rotate generates a new RSA and a new EC key and puts
// them first (they sign from now on); the previous keys stay published for verification, as
// oidc-provider's docs recommend. POST /admin/rotate?drop=1 publishes only the new keys. The
// answer is {"kids": [...]}, the kids that sign from now on. Only for tests: loopback only.

import { generateKeyPairSync, randomUUID } from 'node:crypto';
import * as http from 'node:http';

import Provider from 'oidc-provider';

const port = Number(process.argv[2]);
const clientSecret = process.argv[3];
if (!Number.isInteger(port) || port <= 0 || !clientSecret) {
  console.error('usage: node provider.mjs PORT CLIENT_SECRET');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;
const RESOURCES = { 'https://api.test/rs256': 'RS256', 'https://api.test/es256': 'ES256' };

let generation = 0;
function newKeys() {
  generation += 1;
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  // Named like a real provider's keys, not by thumbprint.
  return [
    { ...rsa, kid: `rsa-${generation}-${randomUUID().slice(0, 8)}`, alg: 'RS256', use: 'sig' },
    { ...ec, kid: `ec-${generation}-${randomUUID().slice(0, 8)}`, alg: 'ES256', use: 'sig' },
  ];
}

function build(keys) {
  const provider = new Provider(issuer, {
    clients: [{
      client_id: 'jwt-wsgi-tests',
      client_secret: clientSecret,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_post',
    }],
    jwks: { keys },
    cookies: { keys: [randomUUID()] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        async getResourceServerInfo(ctx, resourceIndicator) {
          const alg = RESOURCES[resourceIndicator];
          if (!alg) throw new Provider.errors.InvalidTarget();
          return {
            scope: 'read write',
            accessTokenTTL: 300,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg } },
          };
        },
      },
    },
    // A claim other than sub that names the caller (for the middleware's sub_claim).
    extraTokenClaims: async () => ({ email: 'robot@api.test' }),
    ttl: { ClientCredentials: 300 },
  });
  return provider.callback();
}

let keys = newKeys();
let handler = build(keys);

function signingKids() {
  return keys.slice(0, 2).map((key) => key.kid);
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, issuer);
  if (url.pathname === '/admin/rotate' && req.method === 'POST') {
    const fresh = newKeys();
    keys = url.searchParams.get('drop') ? fresh : [...fresh, ...keys];
    handler = build(keys);
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ kids: signingKids() }));
    return;
  }
  handler(req, res);
});

server.listen(port, '127.0.0.1', () => {
  console.log(JSON.stringify({ issuer, kids: signingKids() }));
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
