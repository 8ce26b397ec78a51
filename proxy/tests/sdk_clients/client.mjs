// Drives the official TypeScript MCP SDK (npm @modelcontextprotocol/sdk 1.32)
// against one endpoint with its StreamableHTTPClientTransport.
//
// usage: node client.mjs URL TOKEN
//
// The SDK is loaded from TOOLGATE_NODE_PATH (a node_modules directory, or the
// directory holding one), else from where scripts/install-test-peers.sh puts it.
// ES modules ignore NODE_PATH, hence the explicit resolution below.
//
// Lists tools, calls `search_issues` {"query": "Login"}, then `delete_issue`
// {"id": 0}, which must fail. Prints one JSON line:
//   {"sdk", "protocol_version", "tools", "search", "delete_failed", "delete_error"}
// Exits non-zero on any other failure (the error goes to stderr).

import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';

function sdkRequire() {
  const cache = process.env.XDG_CACHE_HOME || path.join(homedir(), '.cache');
  const candidates = [process.env.TOOLGATE_NODE_PATH, path.join(cache, 'toolgate-peers', 'node')]
    .filter(Boolean)
    .flatMap((p) => (path.basename(p) === 'node_modules' ? [p] : [path.join(p, 'node_modules'), p]));
  for (const dir of candidates) {
    if (existsSync(path.join(dir, '@modelcontextprotocol', 'sdk', 'package.json'))) {
      // Resolution from a file inside `dir` finds packages in `dir` itself.
      return createRequire(path.join(dir, 'resolve-from-here.js'));
    }
  }
  throw new Error(
    `@modelcontextprotocol/sdk not found in ${candidates.join(', ')}: run scripts/install-test-peers.sh`,
  );
}

const [url, token] = process.argv.slice(2);
if (!url || !token) {
  console.error('usage: node client.mjs URL TOKEN');
  process.exit(2);
}

const require = sdkRequire();
const { Client } = require('@modelcontextprotocol/sdk/client/index.js');
const { StreamableHTTPClientTransport } = require('@modelcontextprotocol/sdk/client/streamableHttp.js');
const { McpError } = require('@modelcontextprotocol/sdk/types.js');

const textOf = (result) =>
  result.content
    .filter((c) => c.type === 'text')
    .map((c) => c.text)
    .join('\n');

async function main() {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
    reconnectionOptions: {
      maxReconnectionDelay: 1000,
      initialReconnectionDelay: 100,
      reconnectionDelayGrowFactor: 1.5,
      maxRetries: 0,
    },
  });
  const client = new Client({ name: 'toolgate-ts-test', version: '1.0.0' });
  await client.connect(transport);
  try {
    const tools = [];
    let cursor;
    do {
      const page = await client.listTools(cursor ? { cursor } : undefined);
      tools.push(...page.tools.map((t) => t.name));
      cursor = page.nextCursor;
    } while (cursor);

    const found = await client.callTool({ name: 'search_issues', arguments: { query: 'Login' } });
    if (found.isError) throw new Error(`search_issues failed: ${textOf(found)}`);

    let deleteFailed = false;
    let deleteError = null;
    try {
      const deleted = await client.callTool({ name: 'delete_issue', arguments: { id: 0 } });
      if (deleted.isError) {
        deleteFailed = true;
        deleteError = textOf(deleted);
      }
    } catch (e) {
      if (!(e instanceof McpError)) throw e;
      deleteFailed = true;
      deleteError = e.message;
    }

    console.log(
      JSON.stringify({
        sdk: 'typescript',
        protocol_version: transport.protocolVersion ?? null,
        tools: tools.sort(),
        search: textOf(found),
        delete_failed: deleteFailed,
        delete_error: deleteError,
      }),
    );
  } finally {
    // Ends the session (DELETE) and the GET stream.
    await transport.terminateSession().catch(() => {});
    await client.close();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e?.stack ?? String(e));
    process.exit(1);
  },
);
