"""Drives the official Python MCP SDK (PyPI `mcp` 2.3) against one endpoint.

usage: client.py URL TOKEN [auto|legacy]

  auto    the SDK's default: POST `server/discover` at 2026-07-28 first, fall
          back to the `initialize` handshake when the server refuses it
  legacy  the classic `initialize` session (Mcp-Session-Id)

Lists tools, calls `search_issues` {"query": "Login"}, then `delete_issue`
{"id": 0}, which must fail. Prints one JSON line:
  {"sdk", "mode", "protocol_version", "tools", "search", "delete_failed", "delete_error"}
Exits non-zero on any other failure (the traceback goes to stderr).
"""

import asyncio
import json
import sys

import httpx2
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client


def text_of(result) -> str:
    return "\n".join(c.text for c in result.content if getattr(c, "type", None) == "text")


async def main(url: str, token: str, mode: str) -> dict:
    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {token}"},
        timeout=httpx2.Timeout(30.0, read=60.0),
    )
    async with http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport, mode=mode, cache=None, read_timeout_seconds=30) as client:
            tools = []
            cursor = None
            while True:
                page = await client.list_tools(cursor=cursor)
                tools.extend(t.name for t in page.tools)
                cursor = page.next_cursor
                if cursor is None:
                    break

            found = await client.call_tool("search_issues", {"query": "Login"})
            if found.is_error:
                raise RuntimeError(f"search_issues failed: {text_of(found)}")

            delete_failed, delete_error = False, None
            try:
                deleted = await client.call_tool("delete_issue", {"id": 0})
                if deleted.is_error:
                    delete_failed, delete_error = True, text_of(deleted)
            except MCPError as e:
                delete_failed, delete_error = True, e.error.message

            return {
                "sdk": "python",
                "mode": mode,
                "protocol_version": client.protocol_version,
                "tools": sorted(tools),
                "search": text_of(found),
                "delete_failed": delete_failed,
                "delete_error": delete_error,
            }


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4) or (len(sys.argv) == 4 and sys.argv[3] not in ("auto", "legacy")):
        sys.exit(__doc__)
    mode = sys.argv[3] if len(sys.argv) == 4 else "auto"
    out = asyncio.run(main(sys.argv[1], sys.argv[2], mode))
    print(json.dumps(out), flush=True)
