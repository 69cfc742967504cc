# dap-sidecar launch: debugpy's CLI with TCP_NODELAY on pydevd's connection to its adapter
def _dap_sidecar_nodelay():
    # Runs as `python [options] -c <this> <debugpy's arguments>`, then does exactly what
    # `python [options] -m debugpy <debugpy's arguments>` does, after one change: pydevd's
    # start_client (which opens the app's connection to debugpy's adapter) returns its
    # socket with TCP_NODELAY set, before pydevd writes a byte on it. Without that, every
    # answer pydevd writes waits for the adapter's delayed ACK (about 40 ms).
    # Returns None when the hook is in place, else why not and a short code for it.
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
        return "cannot import debugpy's pydevd (%s: %s)" % (type(e).__name__, e), "no_pydevd"
    finally:
        sys.argv[0] = argv0
    version = getattr(debugpy, "__version__", "?")
    original = getattr(pydevd_comm, "start_client", None)
    if not callable(original) or getattr(pydevd, "start_client", None) is not original:
        why = "debugpy %s has no pydevd_comm.start_client that pydevd calls" % version
        return why, "no_hook"

    def start_client(host, port):
        s = original(host, port)
        try:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (AttributeError, OSError) as e:
            sys.stderr.write("dap-sidecar: TCP_NODELAY not set on pydevd's socket: %s\n" % e)
        return s

    pydevd_comm.start_client = pydevd.start_client = start_client
    return None


def _dap_sidecar_as_usual(why, code):
    # Says why once, then becomes `python [options] -X dap_sidecar_nodelay=<code> -m debugpy
    # <debugpy's arguments>` (same pid): debugpy as without the bootstrap, and a command line
    # that tells the sidecar, which may read no more of this process, why the fix is off.
    import os, sys

    sys.stderr.write(
        "dap-sidecar: TCP_NODELAY not applied (debugpy answers each request about 40 ms "
        "late): %s; debugpy starts as usual\n" % why
    )
    sys.stderr.flush()
    argv = list(getattr(sys, "orig_argv", []))  # Python 3.10+
    marker = "# dap-sidecar launch:"
    for i in range(len(argv) - 1):
        if argv[i] == "-c" and argv[i + 1].startswith(marker):
            option = ["-X", "dap_sidecar_nodelay=" + code, "-m", "debugpy"]
            os.execv(sys.executable, argv[:i] + option + argv[i + 2 :])


_dap_sidecar_why_not = _dap_sidecar_nodelay()
if _dap_sidecar_why_not is not None:
    _dap_sidecar_as_usual(*_dap_sidecar_why_not)
del _dap_sidecar_nodelay, _dap_sidecar_as_usual, _dap_sidecar_why_not
import runpy

runpy._run_module_as_main("debugpy", alter_argv=True)  # what `python -m debugpy` runs
