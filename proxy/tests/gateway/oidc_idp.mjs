// A real OpenID provider on loopback for proxy/tests/gateway/oidc.rs:
// npm oauth2-mock-server 8.2 (discovery document, JWKS, RS256/ES256 tokens
// signed with jose).
//
// usage: node oidc_idp.mjs
//
// Prints one JSON line {"issuer": URL} once listening (port from the OS),
// then answers each JSON line on stdin
//   {"kid": "rs256" | "es256", "claims": {...}, "unset": ["nbf"], "expires_in": 3600}
// with one line {"token": JWT} (or {"error": message}). `claims` are set on
// top of the defaults (iss, iat, exp, nbf); `unset` removes claims. Exits
// when stdin closes.
//
// oauth2-mock-server is loaded from TOOLGATE_NODE_PATH (a node_modules
// directory, or the directory holding one), else from where
// scripts/install-test-peers.sh puts it (ES modules ignore NODE_PATH).

import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { pathToFileURL } from 'node:url';

function resolvePeer(name) {
  const cache = process.env.XDG_CACHE_HOME || path.join(homedir(), '.cache');
  const candidates = [process.env.TOOLGATE_NODE_PATH, path.join(cache, 'toolgate-peers', 'node')]
    .filter(Boolean)
    .flatMap((p) => (path.basename(p) === 'node_modules' ? [p] : [path.join(p, 'node_modules'), p]));
  for (const dir of candidates) {
    if (existsSync(path.join(dir, name, 'package.json'))) {
      return createRequire(path.join(dir, 'resolve-from-here.js')).resolve(name);
    }
  }
  throw new Error(`${name} not found in ${candidates.join(', ')}: run scripts/install-test-peers.sh`);
}

const { OAuth2Server } = await import(pathToFileURL(resolvePeer('oauth2-mock-server')).href);

const server = new OAuth2Server();
await server.issuer.keys.generate('RS256', { kid: 'rs256' });
await server.issuer.keys.generate('ES256', { kid: 'es256' });
await server.start(0, '127.0.0.1');
console.log(JSON.stringify({ issuer: server.issuer.url }));

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  try {
    const req = JSON.parse(line);
    const token = await server.issuer.buildToken({
      kid: req.kid,
      expiresIn: req.expires_in,
      scopesOrTransform: (_header, payload) => {
        Object.assign(payload, req.claims || {});
        for (const claim of req.unset || []) delete payload[claim];
      },
    });
    console.log(JSON.stringify({ token }));
  } catch (e) {
    console.log(JSON.stringify({ error: String(e && e.message ? e.message : e) }));
  }
}
await server.stop();
