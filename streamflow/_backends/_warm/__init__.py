"""The warm fork server: worker processes forked in milliseconds from a clean process
that has already imported what the stages need.

::

    caller process                                    fork server (one a session)
    --------------                                    ---------------------------
    _Server.preload(modules)  --- socket -------->    imports them (each once)
    _Server.fork(job, fds)    --- socket + fds --->   os.fork() -> a worker: runs the job,
           <------------------- pid ---------------             exits when the caller is gone
    WarmProcess.sentinel  <---- exit status ---------  waits on each worker's pidfd

Why: ``spawn`` is safe whatever the caller does (threads, notebooks, no
``__main__`` guard), but every worker is a new interpreter that imports
the world again: seconds a run when stages import scikit-learn or torch.
``fork`` is fast but copies a caller mid-way through its threads' work.
The server is started the way spawn starts a worker (a fresh interpreter
that never runs the user's ``__main__``), is single-threaded, so forking
it is safe, and keeps what it imported: a run's workers start in about a
fork's time once the server has imported their modules.  It is started on
the first run and kept for the session; it exits as soon as the caller's
process does (its socket closes).

Staleness: before a run, the server looks at the files of the modules it
imported from outside the Python installation (the user's own code); if
one changed since (edited, reloaded in a notebook), the server is replaced
by a new one, and that run starts cold.

The parts: ``_client`` (the caller's connection, and the handles of the
workers it starts), ``_serve`` (the server's loop), ``_wire`` (the
messages between them), ``_fds`` (the file descriptors a job hands over);
what the server imports ahead is ``_backends/_imports``'.
"""

from ._client import WarmProcess, preload, preload_nothing, server_pid, shutdown, start_worker

__all__ = ["WarmProcess", "preload", "preload_nothing", "server_pid", "shutdown", "start_worker"]
