"""A legacy HTTP+SSE (2024-11-05) MCP server on the official Python SDK, for
proxy/tests/gateway/legacy_sse.rs. Prints its port, then serves
GET /sse and POST /messages/ on 127.0.0.1 until killed. Requests without
`Authorization: Bearer <argv[1]>` get 401."""

import asyncio
import socket
import sys

import uvicorn
from mcp.server.mcpserver import MCPServer

TOKEN = sys.argv[1]

server = MCPServer("legacy-sse-peer")


@server.tool()
def search_echo(text: str) -> str:
    """Echo the text back."""
    return f"echo: {text}"


@server.tool()
def delete_everything() -> str:
    """A tool agents of team support must not see."""
    return "deleted"


def require_token(app):
    async def guarded(scope, receive, send):
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            if headers.get(b"authorization") != f"Bearer {TOKEN}".encode():
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b"no"})
                return
        await app(scope, receive, send)

    return guarded


sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.bind(("127.0.0.1", 0))
sock.listen(128)
print(sock.getsockname()[1], flush=True)
config = uvicorn.Config(require_token(server.sse_app()), log_level="warning")
asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))
