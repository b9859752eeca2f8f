"""The loopback board lab (ebedge/remote/loopback.py) for the remote fault tests, and a run directory to collect.

`Lab` starts real OpenSSH servers on 127.0.0.1 and runs the real `ebedge remote` CLI against them;
`hostile_ebedge` makes a board whose `agent status` lies.
"""
import json
import os

from ebedge.remote.loopback import (EBEDGE, Lab, hostile_ebedge, lying_ebedge,  # noqa: F401
                                    no_symlinks_or_specials, runner_ebedge)


def write_run(run_dir, run_id, status="complete"):
    """A small run directory as the runner writes it (one phase, one meter at 10 W), and the
    agent's log beside it."""
    os.makedirs(run_dir, exist_ok=True)
    log_dir = os.path.join(os.path.dirname(run_dir), ".agent", run_id)
    os.makedirs(log_dir, exist_ok=True)
    with open(os.path.join(log_dir, "log.txt"), "w") as f:
        f.write("epoch 1/1\n")
    with open(os.path.join(run_dir, "config.json"), "w") as f:
        json.dump({"run_id": run_id, "settings": {}}, f)
    with open(os.path.join(run_dir, "summary.json"), "w") as f:
        json.dump({"run_id": run_id, "status": status, "flags": []}, f)
    with open(os.path.join(run_dir, "phases.csv"), "w") as f:
        f.write("run_id,phase,epoch,t_start_mono,t_end_mono,t_start_wall,t_end_wall\n"
                "%s,search,0,100.0,110.0,1000100.0,1000110.0\n" % run_id)
    with open(os.path.join(run_dir, "samples.csv"), "w") as f:
        f.write("run_id,meter,rail,t_mono,t_wall,power_w,voltage_v,current_a,meter_energy_j,"
                "flags\n")
        for i in range(101):
            t = 100.0 + 0.1 * i
            f.write("%s,tegrastats,total,%.1f,%.1f,10.0,,,,\n" % (run_id, t, t + 1e6))
    return run_dir
