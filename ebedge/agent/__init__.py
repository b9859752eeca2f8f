"""The board-side agent: what `ebedge remote` asks the board to do, one short command at a time.

Runs start detached (their own session, stdin from /dev/null, output to a log file), so a run
survives the SSH connection dropping; the laptop can look at, stop or collect it any time later.
Everything the agent keeps about a run lives beside the run directory, in `<root>/.agent/<id>/`
(settings.json as pushed, log.txt, pid.json), because the runner wants its run directory to itself.

One run per board: the agent takes the runs root's run lock (ebedge.run.runlock) before it starts a
run and hands it to the run's process, which holds it until it exits. A run is live exactly while
its process holds that lock; otherwise its state is read from its files (summary.json's status).
A run that exists is never deleted or restarted from scratch: adopting a killed, failed or
interrupted run resumes it (`--resume`), or leaves it for collection when it cannot be resumed.

Device side: Python 3.6, standard library (plus ebedge and meters).
"""
from ebedge.agent.layout import AGENT_DIR, DEFAULT_ROOT, runs_root  # noqa: F401 (API)
from ebedge.agent.protocol import REQUIRED, STATE_MARK, check, clock_loop, info  # noqa: F401
from ebedge.agent.reservations import lock, lock_holder, reserved_message, unlock  # noqa: F401
from ebedge.agent.runs import list_runs, run_state, start, stop, watch  # noqa: F401
