# dap-sidecar launch: debugpy's CLI with TCP_NODELAY on pydevd's connection to its adapter
def _dap_sidecar_nodelay():
    # Runs as `python [options] -c <this> <debugpy's arguments>`, then does exactly what
    # `python [options] -m debugpy <debugpy's arguments>` does, after one change: pydevd's
    # start_client (which opens the app's connection to debugpy's adapter) returns its
    # socket with TCP_NODELAY set, before pydevd writes a byte on it. Without that, every
    # answer pydevd writes waits for the adapter's delayed ACK (about 40 ms).
    # Returns None when the hook is in place, else why not.
    import os, socket, sys

    safe = sys.flags.isolated or getattr(sys.flags, "safe_path", False)
    if sys.path and sys.path[0] == "" and not safe:
        sys.path[0] = os.getcwd()  # what `-m` puts first on sys.path; `-c` puts ""
    argv0, sys.argv[0] = sys.argv[0], "-m"  # as while `-m` imports the package
    try:
        import debugpy
        from debugpy.server import cli  # noqa: F401 (imports pydevd, as debugpy's __main__)
        import pydevd
        from _pydevd_bundle import pydevd_comm
    except Exception as e:
        return "cannot import debugpy's pydevd (%s: %s)" % (type(e).__name__, e)
    finally:
        sys.argv[0] = argv0
    version = getattr(debugpy, "__version__", "?")
    original = getattr(pydevd_comm, "start_client", None)
    if not callable(original) or getattr(pydevd, "start_client", None) is not original:
        return "debugpy %s has no pydevd_comm.start_client that pydevd calls" % version

    def start_client(host, port):
        s = original(host, port)
        try:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (AttributeError, OSError) as e:
            sys.stderr.write("dap-sidecar: TCP_NODELAY not set on pydevd's socket: %s\n" % e)
        return s

    pydevd_comm.start_client = pydevd.start_client = start_client
    return None


_dap_sidecar_why_not = _dap_sidecar_nodelay()
if _dap_sidecar_why_not is not None:
    import sys

    sys.stderr.write(
        "dap-sidecar: TCP_NODELAY not applied (debugpy answers each request about 40 ms "
        "late): %s; debugpy starts as usual\n" % _dap_sidecar_why_not
    )
    sys.stderr.flush()
del _dap_sidecar_nodelay, _dap_sidecar_why_not
import runpy

runpy._run_module_as_main("debugpy", alter_argv=True)  # what `python -m debugpy` runs
