"""Screenshots of the web view's three main pages, taken by the browser tests' own tooling (headless Chromium):
the list of deliberations, one deliberation (the first DEV one on the list, unless --task-id says), and the plan
it belongs to. Run against a service that serves the web view (see docs/web-plan.yaml for how the README's
were made).

    python bench/web_screenshots.py --url http://127.0.0.1:8090/ --out docs [--token T] [--task-id ID]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from orchestrator.testing import browser


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="the web view's base URL")
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--token", default="", help="a token of AUTH_TOKENS_FILE, where the service asks for one")
    parser.add_argument("--task-id", default="")
    args = parser.parse_args()
    if why := browser.missing():
        raise SystemExit(f"screenshots need Chromium: {why}")
    from selenium.webdriver.common.by import By

    base = args.url.rstrip("/")
    with browser.chromium() as driver:
        if args.token:
            driver.get(f"{base}/login")
            driver.find_element(By.ID, "token").send_keys(args.token)
            driver.find_element(By.ID, "sign-in").click()
        driver.get(f"{base}/")
        browser.wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#deliberations tbody tr[data-task]"))
        task_id = args.task_id or driver.execute_script(
            "const rows = [...document.querySelectorAll('#deliberations tbody tr[data-task]')];"
            "const dev = rows.find(r => r.children[1].textContent.trim() === 'DEV') || rows[0];"
            "return dev.getAttribute('data-task');"
        )
        browser.full_page_screenshot(driver, args.out / "web-list.png", max_height=900)
        driver.get(f"{base}/deliberations/{task_id}")
        browser.wait_for(driver, lambda d: d.find_elements(By.ID, "proposals"))
        browser.full_page_screenshot(driver, args.out / "web-deliberation.png", max_height=3200)
        plan_links = driver.find_elements(By.CSS_SELECTOR, "a[href^='/plans/']")
        if not plan_links:
            raise SystemExit(f"{task_id} belongs to no plan: no plan page to take")
        driver.get(plan_links[0].get_attribute("href"))
        browser.wait_for(driver, lambda d: d.find_elements(By.ID, "plan-graph"))
        browser.full_page_screenshot(driver, args.out / "web-plan.png", max_height=1200)
    for name in ("web-list.png", "web-deliberation.png", "web-plan.png"):
        print(args.out / name)


if __name__ == "__main__":
    main()
