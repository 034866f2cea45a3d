"""The explorer's web server: the page, its scripts and a JSON API over the loaded checkpoints.

It binds to 127.0.0.1 unless told otherwise, serves plotly.js from the installed package and fetches nothing;
FastAPI's docs pages (which load their script from a CDN) are off. Every answer of the API is JSON, errors
included: ``{"error": message}``.
"""
from __future__ import annotations

import socket

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel

from attnlab.explore import page
from attnlab.explore.views import Explorer

HOST = "127.0.0.1"


class RunRequest(BaseModel):
    text: str  # the sentence (a Nadaraya-Watson model: numbers)
    text_b: str | None = None  # the second sentence of a pair (BERT)


def create_app(explorer: Explorer) -> FastAPI:
    """``GET /`` the page, ``GET /<script>`` its scripts, ``GET /api/models`` the checkpoints (each described, or
    its load error), ``POST /api/run`` ``{text, text_b}`` -> each checkpoint's output and maps."""
    app = FastAPI(title="attnlab-explore", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        return JSONResponse({"error": f"bad request: {problems}"}, status_code=422)

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page.page()

    @app.get("/{name}.js")
    def script(name: str) -> Response:
        if f"{name}.js" not in page.SCRIPTS:
            return JSONResponse({"error": f"no script {name}.js"}, status_code=404)
        return Response(page.script(f"{name}.js"), media_type="text/javascript")

    @app.get("/api/models")
    def models() -> list[dict]:
        return explorer.entries

    @app.post("/api/run")
    def run(request: RunRequest) -> JSONResponse:
        try:
            return JSONResponse({"text": request.text, "text_b": request.text_b,
                                 "results": explorer.run(request.text, request.text_b)})
        except ValueError as error:
            return JSONResponse({"error": str(error)}, status_code=400)

    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (``port=0``: a free one); a busy port is a ValueError naming it."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart reuses a port left in TIME_WAIT
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ValueError(f"cannot listen on {host}:{port} ({error.strerror}): is another server using port {port}? "
                         "Choose another with port=N") from error
    sock.listen()
    return sock


def server(app: FastAPI) -> uvicorn.Server:
    """A uvicorn server for ``app`` that logs warnings only; run it with ``.run(sockets=[bind(...)])``."""
    return uvicorn.Server(uvicorn.Config(app, log_level="warning"))
