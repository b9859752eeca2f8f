"""The report in a real browser (Debian's headless chromium, which .ci/run installs): the page renders,
its table is there, every figure loads, and no request leaves the machine."""
import base64
import io
import json
import os
from urllib.parse import urlparse

import pytest

from support.cdp import Browser, find_chromium
from ebedge import report
from test_report import write_run

pytestmark = pytest.mark.host
ERR_NAME_NOT_RESOLVED = -105
CHROMIUM = find_chromium()


# A net log event of any of these types means bytes went, or a connection was made, to another host.
SENDING_EVENTS = {"TCP_CONNECT", "TCP_CONNECT_ATTEMPT", "SOCKET_BYTES_SENT", "UDP_BYTES_SENT", "SSL_CONNECT",
                  "HTTP_TRANSACTION_SEND_REQUEST", "HTTP2_SESSION", "QUIC_SESSION"}


def net_log_events(path):
    """(event type name, params) for every event of a Chromium net log."""
    with open(path) as f:
        text = f.read().rstrip().rstrip(",")
    if not text.endswith("}"):  # a log cut by an exit ends inside the events list
        text += "]}"
    log = json.loads(text)
    names = {number: name for name, number in log["constants"]["logEventTypes"].items()}
    return [(names.get(e["type"], str(e["type"])), e.get("params") or {}) for e in log.get("events", [])]


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
@pytest.mark.timeout(300)
def test_report_renders_in_headless_chromium(tmp_path):
    from PIL import Image  # matplotlib's own dependency

    root = str(tmp_path / "results")
    write_run(root, "r1", samples=True, masks=True, eb_epoch=10)
    write_run(root, "r2", repeat=1, eb_epoch=11, samples=True)
    write_run(root, "d1", method="dense", ratio=None, eb_epoch=None, energy_method="modelled", meter="model")
    write_run(root, "x1", status="failed: out of memory")
    out = str(tmp_path / "rep")
    res = report.build_report([root], out)
    n_svgs = sum(1 for f in res.files if f.endswith(".svg"))
    net_log = str(tmp_path / "netlog.json")
    browser = Browser(CHROMIUM, str(tmp_path / "profile"), net_log)
    try:
        browser.page("Network.enable")
        browser.page("Page.enable")
        url = "file://" + os.path.abspath(os.path.join(out, "index.html"))
        browser.page("Page.navigate", {"url": url})
        browser.wait_event("Page.loadEventFired")
        state = browser.page("Runtime.evaluate", {"returnByValue": True, "expression": """JSON.stringify({
            images: Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight]),
            tables: document.querySelectorAll('table.t2').length,
            cells: Array.from(document.querySelectorAll('table.t2 td')).map(td => td.innerText),
            redFlags: Array.from(document.querySelectorAll('.bad, .flag'))
                           .map(e => getComputedStyle(e).color),
            height: document.body.scrollHeight, text: document.body.innerText.length})"""})
        state = json.loads(state["result"]["value"])
        shot = browser.page("Page.captureScreenshot", {"format": "png"})
    finally:
        browser.close()
    png = base64.b64decode(shot["data"])
    (tmp_path / "screenshot.png").write_bytes(png)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20)
    white = sum(n for n, c in colours if c == (255, 255, 255))
    assert len(colours) > 50 and white < 0.97 * image.width * image.height  # not blank
    assert state["tables"] == 1 and state["text"] > 500 and state["height"] > 1000
    assert any("%" in c and "kJ" in c and "PFLOPs" in c and "measured" in c for c in state["cells"])
    assert any("modelled" in c for c in state["cells"])
    assert len(state["images"]) == n_svgs >= 4
    assert all(done and w > 0 and h > 0 for done, w, h in state["images"])  # every figure loaded
    assert state["redFlags"] and set(state["redFlags"]) == {"rgb(204, 0, 0)"}  # the failed run, in red
    requests = [e["params"]["request"]["url"] for e in state_events(browser)]
    assert requests and requests[0] == url
    assert {urlparse(u).scheme for u in requests} <= {"file", "data"}, requests
    # Chromium's own background fetches may be attempted; the resolver rules stop them before any socket
    events = net_log_events(net_log)
    assert not [(name, params) for name, params in events if name in SENDING_EVENTS]
    assert events and all(params.get("net_error") == ERR_NAME_NOT_RESOLVED for name, params in events
                          if name == "REQUEST_ALIVE" and "net_error" in params)


def state_events(browser):
    return [e for e in browser.events if e.get("method") == "Network.requestWillBeSent"]
