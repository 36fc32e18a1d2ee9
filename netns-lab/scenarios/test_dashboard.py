"""The operator's view of a running node: the Prometheus endpoint and the web dashboard.

[a] 192.168.243.1 ---- veth ---- 192.168.243.2 [b]      a: [metrics] listen = 127.0.0.1:9586
    tunnel 10.79.0.1              tunnel 10.79.0.2       `tidewire dashboard` against a's
                                                         control socket, opened in headless
                                                         Debian chromium (tools/cdp.py)

The scrape passes `promtool check metrics`; the page shows what `tidewire status --json`
shows, and its throughput graph grows while a transfer runs; a wrong token gets 401 and
no data; no private key appears anywhere the dashboard serves. The screenshot is kept in
netns-lab/artifacts/ (not committed).
"""

import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from common import PY, TOOLS, ping, transfer
from lab import TIDEWIRE, Lab, genkey, tidewire_toml

sys.path.insert(0, str(TOOLS))
from cdp import Browser, chromium

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
MiB = 1 << 20

SCRAPE = (
    "import urllib.request, sys;"
    "r = urllib.request.urlopen('http://127.0.0.1:9586/metrics', timeout=5);"
    "sys.stdout.write(r.headers['Content-Type'] + '\\n' + r.read().decode())"
)


def get(url: str, token: str) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.skipif(chromium() is None, reason="needs Debian's chromium")
@pytest.mark.skipif(shutil.which("promtool") is None, reason="needs Debian's prometheus")
def test_metrics_scrape_and_the_dashboard_in_a_real_browser() -> None:
    with Lab("dash") as lab:
        a, b = lab.host("a"), lab.host("b")
        lab.link(a, b, "192.168.243.1/24", "192.168.243.2/24")
        (ka, pa), (kb, pb) = genkey(), genkey()
        conf_a = tidewire_toml(
            name="twa",
            private_key=ka,
            address=["10.79.0.1/24"],
            lab=lab,
            listen_port=51820,
            peers=[{"public_key": pb, "endpoint": "192.168.243.2:51821",
                    "allowed_ips": ["10.79.0.2/32"]}],
        )
        na = lab.tidewire(a, "twa", conf_a + '\n[metrics]\nlisten = "127.0.0.1:9586"\n')
        lab.tidewire(
            b,
            "twb",
            tidewire_toml(
                name="twb",
                private_key=kb,
                address=["10.79.0.2/24"],
                lab=lab,
                listen_port=51821,
                peers=[{"public_key": pa, "allowed_ips": ["10.79.0.1/32"]}],
            ),
        )
        ping(a, "10.79.0.2")
        assert "metrics at http://127.0.0.1:9586/metrics" in na.proc.log()

        # -- the Prometheus endpoint -----------------------------------------------
        content_type, _, text = a.run([PY, "-c", SCRAPE]).stdout.partition("\n")
        assert content_type.startswith("text/plain; version=0.0.4")
        check = subprocess.run(
            ["promtool", "check", "metrics"], input=text, capture_output=True, text=True,
            timeout=30,
        )
        assert check.returncode == 0, check.stdout + check.stderr
        assert f'tidewire_peer_handshakes_total{{peer="{pb}"}} 1' in text
        rss = [ln for ln in text.splitlines() if ln.startswith("process_resident_memory_bytes ")]
        assert rss and 10 * MiB < float(rss[0].split()[1]) < 1 << 30
        for family in ("tidewire_receipts_total", "tidewire_peer_rx_bytes_total"):
            assert f"# TYPE {family} counter" in text
        assert ka not in text

        # -- the dashboard -----------------------------------------------------------
        dash = subprocess.Popen(
            [TIDEWIRE, "dashboard", "--socket", str(na.socket), "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        browser = None
        try:
            assert dash.stdout is not None
            url = dash.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:") and "/#token=" in url, url
            base, token = url.split("/#token=")
            assert len(token) == 43  # 32 random bytes, urlsafe base64 without padding

            code, body = get(base + "/api/status", "not-the-token")
            assert (code, body) == (401, b"")
            code, body = get(base + "/api/status", "")
            assert (code, body) == (401, b"")
            served = b""
            for path in ("/api/status", "/api/usage", "/api/metrics", "/", "/app.js"):
                code, body = get(base + path, token)
                assert code == 200, path
                served += body
            assert ka.encode() not in served and b"private" not in served.lower()

            browser = Browser(url)
            browser.wait_for(
                "window.tidewire && window.tidewire.authorized === true && window.tidewire.points"
                " > 0",
                timeout=20,
                what="the page to log in and sample",
            )
            before = na.status()
            time.sleep(1.5)  # one more poll after the CLI's reading
            page = browser.evaluate(
                "({iface: document.getElementById('iface').textContent,"
                " key: document.getElementById('pubkey').textContent,"
                " peers: document.getElementById('peer-count').textContent,"
                " rx: Number(document.getElementById('rx-total').dataset.bytes)})"
            )
            after = na.status()
            assert page["iface"] == before["interface"] == "twa"
            assert page["key"] == before["public_key"]
            assert int(page["peers"]) == len(before["peers"]) == 1
            rx = [s["peers"][0]["rx_bytes"] for s in (before, after)]
            assert rx[0] <= page["rx"] <= rx[1] + 64 * 1024, (rx, page["rx"])

            points = browser.evaluate("window.tidewire.points")
            transfer(lab, b, a, "10.79.0.1", 40 * MiB)
            browser.wait_for(
                f"window.tidewire.points >= {points + 2} && window.tidewire.maxRate > 1e6",
                timeout=15,
                what="the throughput graph to show the transfer",
            )
            series = browser.evaluate(f"window.tidewire.series[{json.dumps(pb)}].length")
            assert series >= 3
            rx_page = browser.wait_for(
                "Number(document.getElementById('rx-total').dataset.bytes) > "
                f"{page['rx'] + 40 * MiB}",
                timeout=10,
                what="the page's rx bytes to count the transfer",
            )
            assert rx_page
            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / "dashboard.png"
            browser.screenshot(shot)
            assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000
            print(f"\ndashboard screenshot: {shot}")
        finally:
            if browser is not None:
                browser.close()
            dash.terminate()
            dash.wait(timeout=10)
        assert dash.returncode in (0, -15), dash.stderr.read() if dash.stderr else ""
