"""Child process: one gRPC C-core (python3-grpcio) client on one xds:/// target.

Run with /usr/bin/python3 (Debian's python3-grpcio). Spawned by runner.ts.
Protocol: one JSON object per line, exactly as grpc-js-xds-worker.mjs
(init {bootstrap, target} first, then ready / call / state / close).
EOF on stdin ends the process.
"""
import faulthandler
import json
import os
import sys
import threading
import time

T0 = time.monotonic()
faulthandler.enable()  # a C-core crash prints the Python stack to stderr
import grpc  # noqa: E402

WHOAMI_PATH = "/signalbox.test.Echo/Whoami"
_out_lock = threading.Lock()


def send(obj):
    line = json.dumps(obj, separators=(",", ":"))
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


# Created by the "init" op. C-core reads the bootstrap (getenv) when the first
# xds: channel creates its XdsClient, so the process can load before it is known.
channel = None
whoami = None
_state = {"value": "IDLE"}


def _on_state(connectivity):
    _state["value"] = connectivity.name


def init(req):
    global channel, whoami
    if channel is not None:
        raise ValueError("already initialised")
    target = req.get("target")
    if not target:
        raise ValueError("init: target is required")
    os.environ.pop("GRPC_XDS_BOOTSTRAP", None)
    os.environ["GRPC_XDS_BOOTSTRAP_CONFIG"] = json.dumps(req.get("bootstrap"))
    channel = grpc.insecure_channel(target)
    whoami = channel.unary_unary(WHOAMI_PATH)  # no serializers: raw bytes both ways
    channel.subscribe(_on_state, try_to_connect=False)
    return {}


def wait_ready(timeout_ms):
    start = time.monotonic()
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout_ms / 1000.0)
        ready, error = True, None
    except grpc.FutureTimeoutError:
        ready, error = False, "channel not ready within %d ms" % timeout_ms
    return {"ready": ready, "ms": round((time.monotonic() - start) * 1000), "state": _state["value"], "error": error}


def calls(req):
    n = int(req.get("n", 1))
    timeout_s = float(req.get("timeoutMs", 2000)) / 1000.0
    concurrency = max(1, int(req.get("concurrency", 1)))
    wait_for_ready = bool(req.get("waitForReady", False))
    metadata = tuple((str(k), str(v)) for k, v in (req.get("metadata") or {}).items())
    result = {"byBackend": {}, "errors": {}, "errorMessages": {}, "latenciesMs": []}

    def record(start, end, fut):
        ms = round((end - start) * 1000, 2)
        result["latenciesMs"].append(ms)
        try:
            payload = fut.result()
        except grpc.RpcError as e:
            code = e.code().name if e.code() is not None else "UNKNOWN"
            result["errors"][code] = result["errors"].get(code, 0) + 1
            result["errorMessages"].setdefault(code, e.details())
            return
        try:
            backend = str(json.loads(payload.decode("utf-8"))["backend"])
        except Exception as e:  # noqa: BLE001
            result["errors"]["BAD_REPLY"] = result["errors"].get("BAD_REPLY", 0) + 1
            result["errorMessages"].setdefault("BAD_REPLY", repr(e))
            return
        result["byBackend"][backend] = result["byBackend"].get(backend, 0) + 1

    done = 0
    while done < n:
        batch = []
        for _ in range(min(concurrency, n - done)):
            ends = []
            start = time.monotonic()
            fut = whoami.future(b"", timeout=timeout_s, metadata=metadata, wait_for_ready=wait_for_ready)
            fut.add_done_callback(lambda _f, ends=ends: ends.append(time.monotonic()))
            batch.append((start, ends, fut))
        for start, ends, fut in batch:
            try:
                fut.result()
            except grpc.RpcError:
                pass
            record(start, ends[0] if ends else time.monotonic(), fut)
        done += len(batch)
    return result


def handle(req):
    op = req.get("op")
    if op == "init":
        return init(req)
    if channel is None:
        raise ValueError("op %r before init" % (op,))
    if op == "ready":
        return wait_ready(int(req.get("timeoutMs", 10000)))
    if op == "call":
        return calls(req)
    if op == "state":
        return {"state": _state["value"]}
    if op == "close":
        channel.close()
        return {}
    raise ValueError("unknown op %r" % (op,))


send({"event": "hello", "pid": os.getpid(), "client": "c-core", "grpcVersion": grpc.__version__,
      "startupMs": round((time.monotonic() - T0) * 1000)})

for line in sys.stdin:
    if not line.strip():
        continue
    req_id = None
    try:
        req = json.loads(line)
        req_id = req.get("id")
        res = handle(req)
        send({"id": req_id, "ok": True, "result": res})
        if req.get("op") == "close":
            break
    except Exception as e:  # noqa: BLE001
        import traceback
        send({"id": req_id, "ok": False, "error": "%r\n%s" % (e, traceback.format_exc())})
# os._exit avoids waiting on C-core threads during interpreter shutdown.
sys.stdout.flush()
os._exit(0)
