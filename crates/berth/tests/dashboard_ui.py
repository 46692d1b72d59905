"""The dashboard in a real headless Chromium, driven by Selenium (Debian's chromium,
chromium-driver and python3-selenium). Run by crates/berth/tests/python.rs, which starts the
daemon and the workloads and passes DASH_URL, DOCKER_HOST and KUBECONFIG. Chromium is kept to
loopback: every name resolves to nothing but 127.0.0.1, and other traffic goes to a dead proxy.
Prints one JSON line of timings at the end (the benchmark reads it)."""

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

URL = os.environ["DASH_URL"]
BASE = URL.split("/?")[0]
KUBECONFIG = os.environ["KUBECONFIG"]


def sh(*args):
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=60).stdout.strip()


def kubectl(*args):
    return sh("kubectl", "--kubeconfig", KUBECONFIG, *args)


def wait(what, f, secs=30):
    """f() until it is truthy (exceptions count as not yet); its value."""
    end = time.time() + secs
    last = None
    while time.time() < end:
        try:
            v = f()
            if v:
                return v
        except Exception as e:  # the page or a command not there yet
            last = e
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last error: {last!r})")


def status(url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


# Without the token, nothing: neither the page nor the API; nor under another host name.
assert status(BASE + "/") == 401, "the page without a token"
assert status(BASE + "/api/state") == 401, "the API without the cookie"
assert status(URL, headers={"Host": "rebound.example:" + BASE.rsplit(":", 1)[1]}) == 403, "another host name"
assert status(BASE + "/?token=" + "0" * 64) == 401, "a wrong token"

# The profile goes in the test's directory (removed with it), else in a temporary one.
profile = tempfile.mkdtemp(prefix="chromium-", dir=os.environ.get("BERTH_UI_TEST"))
opts = Options()
opts.binary_location = "/usr/bin/chromium"
for a in [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--no-first-run",
    "--proxy-server=http://127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--window-size=1600,1000",
    f"--user-data-dir={profile}",
]:
    opts.add_argument(a)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
driver.set_page_load_timeout(30)
timings = {}
try:
    t0 = time.time()
    driver.get(URL)
    # The token is traded for a cookie and leaves the address bar.
    assert "token" not in driver.current_url, driver.current_url
    row = lambda tab, name: driver.find_element(By.CSS_SELECTOR, f'#{tab} tr[data-name="{name}"]')
    wait("the ticker's row", lambda: row("containers", "ticker"))
    timings["first_rows_s"] = round(time.time() - t0, 3)
    nav = driver.execute_script(
        "const n = performance.getEntriesByType('navigation')[0];"
        "return {load: n.loadEventEnd - n.startTime, dom: n.domContentLoadedEventEnd - n.startTime};"
    )
    timings["load_ms"] = round(nav["load"], 1)
    timings["dom_ms"] = round(nav["dom"], 1)

    def tab(name):
        driver.find_element(By.CSS_SELECTOR, f'nav button[data-tab="{name}"]').click()

    def click(tab_name, name, act):
        tab(tab_name)
        row(tab_name, name).find_element(By.CSS_SELECTOR, f'button[data-act="{act}"]').click()

    assert "Up" in row("containers", "ticker").find_element(By.CSS_SELECTOR, ".state").text

    # Live plots: the busy container's CPU, sampled and drawn.
    def busy():
        r = row("containers", "burner")
        cpu = r.find_element(By.CSS_SELECTOR, "td.cpu").text.rstrip("%")
        svg = r.find_element(By.CSS_SELECTOR, "svg.plot")
        points = svg.find_element(By.CSS_SELECTOR, "polyline.cpu").get_attribute("points")
        return cpu and float(cpu) > 10 and int(svg.get_attribute("data-samples")) >= 2 and len(points.split()) >= 2 and cpu

    timings["burner_cpu_percent"] = float(wait("the burner's CPU plot", busy))
    assert row("containers", "burner").find_element(By.CSS_SELECTOR, "td.mem").text.endswith("B")

    # The live log view: lines keep coming while it is open.
    click("containers", "ticker", "logs")

    def ticks():
        return [int(n) for n in re.findall(r"tick (\d+)", driver.find_element(By.ID, "log-lines").text)]

    first = wait("the ticker's log lines", lambda: ticks() and max(ticks()))
    later = wait("newer log lines", lambda: max(ticks()) > first + 3 and max(ticks()))
    assert later > first

    # Stop, and the followed log ends; start again.
    click("containers", "ticker", "stop")
    wait("the ticker stopped", lambda: sh("docker", "inspect", "-f", "{{.State.Running}}", "ticker") == "false")
    wait("the page sees it stopped", lambda: "Exited" in row("containers", "ticker").find_element(By.CSS_SELECTOR, ".state").text)
    wait("the log view says so", lambda: "stopped" in driver.find_element(By.ID, "log-state").text)
    click("containers", "ticker", "start")
    wait("the ticker running again", lambda: sh("docker", "inspect", "-f", "{{.State.Running}}", "ticker") == "true")
    before = sh("docker", "inspect", "-f", "{{.State.StartedAt}}", "burner")
    click("containers", "burner", "restart")
    wait("the burner restarted", lambda: sh("docker", "inspect", "-f", "{{.State.StartedAt}}", "burner") != before)

    # Images and compose projects.
    tab("images")
    assert row("images", "bb:1").is_displayed()
    tab("compose")
    wait("the compose project", lambda: "web 1/1" in row("compose", "shop").text)
    click("compose", "shop", "stop")
    wait("the project stopped", lambda: "web 0/1" in row("compose", "shop").text)

    # Pods: their logs and their plots.
    tab("pods")
    pods = kubectl("get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].metadata.name}").split()
    assert pods, "the deployment's pods"
    pod = pods[0]
    wait("the pod's row", lambda: "Running" in row("pods", pod).text)
    wait("the pod's memory", lambda: row("pods", pod).find_element(By.CSS_SELECTOR, "td.mem").text)
    wait("the pending pod says why", lambda: "Insufficient cpu" in row("pods", "hungry").find_element(By.CSS_SELECTOR, ".status").text)
    click("pods", pod, "logs")
    wait("the pod's log", lambda: "hello from" in driver.find_element(By.ID, "log-lines").text)

    # Deployments: scale and roll back.
    tab("deployments")
    wait("the deployment's row", lambda: row("deployments", "web"))
    box = row("deployments", "web").find_element(By.CSS_SELECTOR, "input.replicas")
    box.clear()
    box.send_keys("3")
    click("deployments", "web", "scale")
    wait("3 replicas", lambda: kubectl("get", "deploy", "web", "-o", "jsonpath={.spec.replicas}") == "3")
    wait("3 ready on the page", lambda: row("deployments", "web").find_element(By.CSS_SELECTOR, ".ready").text == "3/3", 60)
    rev = row("deployments", "web").find_element(By.CSS_SELECTOR, ".revision").text
    click("deployments", "web", "rollback")
    wait(
        "the previous template back",
        lambda: kubectl("get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].env[0].value}") == "1",
    )
    wait("a new revision on the page", lambda: int(row("deployments", "web").find_element(By.CSS_SELECTOR, ".revision").text) > int(rev))

    tab("services")
    wait("the service", lambda: "80/TCP" in row("services", "web").text)

    # An action the server refuses shows its message.
    driver.execute_script("document.querySelector('#deployments tr[data-name=\"web\"] input.replicas').value = '-4'")
    click("deployments", "web", "scale")
    wait("the refusal", lambda: "whole number" in driver.find_element(By.ID, "toast").text)
finally:
    driver.quit()

print(json.dumps(timings))
