# dap-sidecar launch: debugpy's CLI with TCP_NODELAY on pydevd's connection to its adapter
def _dap_sidecar_nodelay():
    # Runs as `python [options] -c <this> <debugpy's arguments>`, then does exactly what
    # `python [options] -m debugpy <debugpy's arguments>` does, with two changes. pydevd's
    # start_client (which opens the app's connection to debugpy's adapter) returns its
    # socket with TCP_NODELAY set, before pydevd writes a byte on it: without that, every
    # answer pydevd writes waits for the adapter's delayed ACK (about 40 ms). And the
    # adapter starts with TCP_NODELAY on its sockets (_dap_sidecar_adapter, best effort).
    # Returns None when pydevd's hook is in place, else why not and a short code for it.
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
    why = _dap_sidecar_adapter(cli, os, sys)
    if why is not None:
        sys.stderr.write(
            "dap-sidecar: TCP_NODELAY not set on debugpy's adapter process (each step "
            "waits about 40 ms once): %s\n" % why
        )
    return None


def _dap_sidecar_adapter(cli, os, sys):
    # debugpy.listen() starts debugpy's adapter, a separate process, as `python <the
    # adapter's directory> <its arguments>`. The adapter writes a step's answer and its
    # events to the IDE separately, so without TCP_NODELAY the `stopped` event waits for
    # the IDE's delayed ACK. While the CLI starts debugging, the adapter is started as
    # `python -c <_DAP_SIDECAR_ADAPTER> <the same arguments>` instead: the same program,
    # with TCP_NODELAY on the sockets it accepts. subprocess.Popen is swapped for that
    # moment only, and passes every other call through unchanged.
    import subprocess

    code = _DAP_SIDECAR_ADAPTER
    try:
        from debugpy import adapter

        here = os.path.dirname(adapter.__file__)
    except Exception as e:
        return "cannot find it (%s: %s)" % (type(e).__name__, e)
    start = getattr(cli, "start_debugging", None)
    if not callable(start):
        return "debugpy's CLI has no start_debugging"
    real = subprocess.Popen

    def popen(args, *more, **kwargs):
        if isinstance(args, list) and len(args) > 1 and args[1] == here:
            subprocess.Popen = real
            args = [args[0], "-c", code] + args[1:]
        return real(args, *more, **kwargs)

    def start_debugging(*args, **kwargs):
        subprocess.Popen = popen
        try:
            return start(*args, **kwargs)
        finally:
            if subprocess.Popen is popen:
                subprocess.Popen = real

    cli.start_debugging = start_debugging
    return None


_DAP_SIDECAR_ADAPTER = """# dap-sidecar launch: debugpy's adapter, TCP_NODELAY on the sockets it accepts
def _dap_sidecar_adapter():
    import socket, sys

    accept = socket.socket.accept

    def nodelay_accept(self):
        conn, address = accept(self)
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # not a TCP socket
        return conn, address

    socket.socket.accept = nodelay_accept
    del sys.argv[0]  # now as for `python <directory> ...`: the directory first
    if sys.path and sys.path[0] == "":
        sys.path[0] = sys.argv[0]  # where Python puts a directory it runs
    else:
        sys.path.insert(0, sys.argv[0])


_dap_sidecar_adapter()
del _dap_sidecar_adapter
__import__("runpy")._run_module_as_main("__main__", alter_argv=False)  # `python <directory>`
"""


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
del _dap_sidecar_nodelay, _dap_sidecar_adapter, _dap_sidecar_as_usual, _dap_sidecar_why_not
del _DAP_SIDECAR_ADAPTER
import runpy

runpy._run_module_as_main("debugpy", alter_argv=True)  # what `python -m debugpy` runs
