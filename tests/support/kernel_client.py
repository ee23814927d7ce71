"""Start a kernel in a real single-user server and run code in it, as a browser would.

Run with the hub's interpreter (it needs tornado, which .venv-hub has; the tests' own
environment does not), through the proxy, with a token that has ``access:servers``:

    REALHUB_KERNEL_TOKEN=... .venv-hub/bin/python tests/support/kernel_client.py \\
        http://127.0.0.1:PORT/user/ann/ "import time; time.sleep(600)" --until busy

It starts a kernel (``POST api/kernels``), connects to its channels over the kernel websocket
(``api/kernels/ID/channels``, the JSON protocol), asks ``kernel_info`` (a new kernel reports
``starting`` until a client does), sends the code as an ``execute_request`` and waits, bounded
by ``--timeout``, until the kernel's iopub status is ``--until`` (``busy``: the code is running;
``idle``: it finished). Then it disconnects and prints the kernel id; the kernel goes on with
the code. The token is read from the environment only, never from the command line.
"""

import argparse
import asyncio
import json
import os
import sys
import uuid
from datetime import datetime, timezone

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect


def message(msg_type, content, session):
    return {
        "header": {"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "username": "test",
                   "session": session, "version": "5.3",
                   "date": datetime.now(timezone.utc).isoformat()},
        "parent_header": {}, "metadata": {}, "content": content, "channel": "shell",
        "buffers": [],
    }


async def run(server_url, code, until, timeout):
    headers = {"Authorization": "token " + os.environ["REALHUB_KERNEL_TOKEN"]}
    answer = await AsyncHTTPClient().fetch(HTTPRequest(
        server_url + "api/kernels", method="POST", headers=headers,
        body=json.dumps({"name": "python3"}), request_timeout=timeout))
    kernel = json.loads(answer.body)["id"]
    session = uuid.uuid4().hex
    ws_url = server_url.replace("http", "ws", 1) + "api/kernels/%s/channels?session_id=%s" % (
        kernel, session)
    connection = await websocket_connect(HTTPRequest(ws_url, headers=headers,
                                                     request_timeout=timeout))
    try:
        await connection.write_message(json.dumps(message("kernel_info_request", {}, session)))
        request = message("execute_request", {"code": code, "silent": False,
                                              "store_history": False, "user_expressions": {},
                                              "allow_stdin": False, "stop_on_error": True},
                          session)
        await connection.write_message(json.dumps(request))
        sent = request["header"]["msg_id"]
        while True:
            raw = await connection.read_message()
            if raw is None:
                raise RuntimeError("the kernel websocket closed")
            reply = json.loads(raw)
            if (reply.get("channel") == "iopub" and reply.get("msg_type") == "status"
                    and reply.get("parent_header", {}).get("msg_id") == sent
                    and reply["content"].get("execution_state") == until):
                return kernel
    finally:
        connection.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server_url", help="the server's URL through the proxy, ending in /")
    parser.add_argument("code")
    parser.add_argument("--until", choices=("busy", "idle"), default="idle")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    kernel = asyncio.run(asyncio.wait_for(run(args.server_url, args.code, args.until,
                                              args.timeout), args.timeout))
    print(kernel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
