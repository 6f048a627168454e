"""The workbench in a real browser: JupyterLab 4 on 127.0.0.1, driven by Playwright with Debian's Chromium.

The incoming-mail notebook is run, two messages are ticked and downloaded; the mail notebook then lists
both as unread, and the hostile HTML mail among them is opened: its script, event handlers,
``javascript:`` link, style sheets and remote image must not run or load anything until remote images
are asked for. Screenshots go to the test's temporary directory.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from helpers import add_account
from jupyter import CHROMIUM_ARGS, JupyterLab, Tracker, chromium_or_skip
from mailfactory import make_mail
from uimail import hostile_mail
from vmailkit import Store

pytestmark = pytest.mark.dovecot

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PW_ENV = "VMK_BROWSER_PW"
TIMEOUT = 30_000   # ms, for one step


def prepare(name: str, root: Path, **parameters) -> None:
    """Copy a notebook into the server's root with its parameters injected (not executed)."""
    import papermill

    papermill.execute_notebook(str(NOTEBOOKS / name), str(root / name), parameters=parameters, prepare_only=True,
                               progress_bar=False, log_output=False)


def open_and_run_all(page, lab: JupyterLab, name: str) -> None:
    """Open a notebook from JupyterLab's file browser (the first one by URL), wait for its kernel, run all."""
    if "/lab" not in page.url:
        page.goto(lab.url(f"lab/tree/{name}"), timeout=60_000)
    else:
        page.locator(".jp-DirListing-item", has_text=name).dblclick()
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").wait_for(timeout=60_000)
    page.locator(".lm-TabBar-tab.lm-mod-current", has_text=name).first.wait_for(timeout=60_000)
    # the kernel is ready when the status bar says so (it says "No Kernel | Initializing" before)
    page.locator(".jp-StatusBar-Widget").filter(has_text=re.compile(r"Python 3 \(ipykernel\) \| Idle")).first.wait_for(timeout=60_000)
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-item[data-command='runmenu:run-all']").click()


def test_download_and_read_in_jupyterlab(tmp_path, dovecot, mailuser):
    chromium = chromium_or_skip()
    from playwright.sync_api import expect, sync_playwright

    shots = tmp_path / "screenshots"
    shots.mkdir()
    root = tmp_path / "lab"
    root.mkdir()
    with Tracker() as tracker:
        for raw in (make_mail(1), hostile_mail(2, tracker=tracker.base), make_mail(3)):
            dovecot.deliver(mailuser.name, raw)
        store = Store(root / "office.duckdb", lock_timeout=30)
        store.add_user("anna", "anna@tour.example")
        add_account(store, dovecot, mailuser, name="office", password_env=PW_ENV)
        store.subscribe("anna", "office")
        db = str(root / "office.duckdb")
        prepare("02_incoming.ipynb", root, db_path=db, user="anna")
        prepare("03_emails.ipynb", root, db_path=db, user="anna", save_dir=str(root))

        with JupyterLab(root, tmp_path / "jupyter", env={PW_ENV: mailuser.password}) as lab, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1300})
                dialogs: list[str] = []
                page.on("dialog", lambda d: (dialogs.append(f"{d.type}: {d.message}"), d.dismiss()))
                page.set_default_timeout(TIMEOUT)

                # -- incoming mail: get, tick two, download --------------------------------------
                open_and_run_all(page, lab, "02_incoming.ipynb")
                panel = page.locator(".vmk-incoming-panel")
                panel.wait_for(timeout=60_000)
                page.locator("button.vmk-get").click()
                rows = page.locator(".vmk-incoming-table .vmk-row")
                expect(rows).to_have_count(3, timeout=TIMEOUT)
                expect(page.locator(".vmk-statuses")).to_contain_text("office: 3 message(s)")
                panel.screenshot(path=str(shots / "01-incoming-listed.png"))
                rows.nth(0).locator(".vmk-row-check input").check()
                rows.nth(1).locator(".vmk-row-check input").check()
                expect(page.locator(".vmk-selection").first).to_contain_text("2 selected")
                page.locator("button.vmk-download-button").click()
                page.locator("button.vmk-confirm").click()
                expect(page.locator(".vmk-summary")).to_contain_text("Downloaded 2", timeout=60_000)
                expect(page.locator(".vmk-summary")).to_contain_text("failed 0")
                panel.screenshot(path=str(shots / "02-incoming-downloaded.png"))
                assert store.count_emails() == 2

                # -- the mail notebook: both unread; open the hostile mail --------------------------
                open_and_run_all(page, lab, "03_emails.ipynb")
                mail_rows = page.locator(".vmk-mail-table .vmk-row")
                expect(mail_rows).to_have_count(2, timeout=60_000)
                for i in range(2):
                    expect(mail_rows.nth(i).locator(".vmk-col-status")).to_have_text("unread")
                page.locator(".vmk-mail-list-panel").screenshot(path=str(shots / "03-mail-list-unread.png"))

                hostile = mail_rows.filter(has_text="Confirmation B-4712")
                hostile.locator("button.vmk-row-action").click()
                frame_el = page.locator("iframe.vmk-body-html")
                frame_el.wait_for()
                frame = frame_el.content_frame
                expect(frame.locator("h1")).to_have_text("Hola from Hotel Sol")
                # the sanitiser removed what could run, the sandbox would have stopped it anyway
                assert frame.locator("script, link, iframe, form, object, svg, body style").count() == 0   # our own <style> is in <head>
                jslink, clicky = frame.get_by_text("click me"), frame.get_by_text("hover me")
                assert jslink.get_attribute("href") is None and clicky.get_attribute("onclick") is None
                assert frame.locator("[onerror], [onload], [onclick], [onmouseover]").count() == 0
                assert frame.locator("img[alt=logo]").get_attribute("src").startswith("data:image/png;base64,")
                assert frame.locator("img[alt=tracker]").get_attribute("src").startswith("data:image/svg+xml")
                sandbox = frame_el.get_attribute("sandbox")
                assert "allow-scripts" not in sandbox and "allow-same-origin" not in sandbox
                clicky.hover()
                clicky.click()
                jslink.click()
                page.wait_for_timeout(500)
                assert "PWNED" not in page.title() and not dialogs
                assert tracker.paths == [], tracker.paths          # nothing was fetched from the sender
                page.locator(".vmk-reader-panel").screenshot(path=str(shots / "04-reader-hostile-mail.png"))

                # remote images load only when asked, and nothing else does
                page.locator("button.vmk-remote-images").click()
                page.wait_for_function("() => true")
                frame = page.locator("iframe.vmk-body-html").content_frame
                expect(frame.locator("img[alt=tracker]")).to_have_attribute("src", f"{tracker.base}/pixel.png")
                page.wait_for_timeout(1000)
                assert tracker.paths == ["/track/pixel.png"], tracker.paths
                assert "PWNED" not in page.title() and not dialogs
                page.locator(".vmk-reader-panel").screenshot(path=str(shots / "05-reader-remote-images.png"))
            except BaseException:
                page.screenshot(path=str(shots / "failure.png"), full_page=True)
                keep = os.environ.get("VMK_KEEP_SCREENSHOTS")
                if keep:
                    shutil.copytree(shots, keep, dirs_exist_ok=True)
                print(lab.log_tail(60))
                raise
            finally:
                browser.close()
    assert sorted(p.name for p in shots.iterdir()) == [
        "01-incoming-listed.png", "02-incoming-downloaded.png", "03-mail-list-unread.png",
        "04-reader-hostile-mail.png", "05-reader-remote-images.png"]
    keep = os.environ.get("VMK_KEEP_SCREENSHOTS")
    if keep:
        shutil.copytree(shots, keep, dirs_exist_ok=True)
