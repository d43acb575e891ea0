"""The service's page in a real headless browser (Debian's chromium and chromedriver).

``make test`` installs ``chromium`` and ``chromium-driver`` through apt when they are
missing and it runs as root; elsewhere this test is skipped with the reason. The browser
(``tests/conftest.py``'s ``chromium``) has the network cut: only 127.0.0.1 resolves. The page
must load without a console error, describe the model from ``/v1/info``, and, when the
form is submitted, show a decoded PNG of the requested grid size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from aigc_course import kinds
from aigc_course.deploy.server import LocalServer
from aigc_course.deploy.service import grid_shape

pytestmark = pytest.mark.slow


def test_the_page_generates_a_grid_of_the_requested_size(chromium: object,
                                                         wait_for: Callable[..., Any]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver = chromium
    with LocalServer(kinds.CHECKPOINTS / "gan_digits16.pt", env={"OMP_NUM_THREADS": "1"}) as s:
        driver.get(s.url + "/")                                      # type: ignore[attr-defined]
        wait_for(lambda: driver.find_element(By.ID, "go").is_enabled())  # type: ignore[attr-defined]
        described = driver.find_element(By.ID, "model").text            # type: ignore[attr-defined]
        assert "gan model" in described and "10 classes" in described
        Select(driver.find_element(By.ID, "label")).select_by_value("4")  # type: ignore[attr-defined]
        n = driver.find_element(By.ID, "n")                              # type: ignore[attr-defined]
        n.clear()
        n.send_keys("6")
        driver.find_element(By.ID, "go").click()                         # type: ignore[attr-defined]
        grid = driver.find_element(By.ID, "grid")                        # type: ignore[attr-defined]
        loaded = wait_for(lambda: grid.get_attribute("data-loaded"))
        height, width = grid_shape(6, 16)
        assert loaded == f"{width}x{height}"
        assert driver.execute_script(                                    # type: ignore[attr-defined]
            "const i = document.getElementById('grid'); return i.complete && i.naturalWidth")
        assert "seed 0" in driver.find_element(By.ID, "meta").text       # type: ignore[attr-defined]

        # a refused request is shown on the page, not thrown into the console
        n.clear()
        n.send_keys("999")
        driver.execute_script("document.getElementById('n').removeAttribute('max')")  # type: ignore[attr-defined]
        driver.find_element(By.ID, "go").click()                         # type: ignore[attr-defined]
        error = wait_for(lambda: driver.find_element(By.ID, "error").text)  # type: ignore[attr-defined]
        assert "422" in str(error) and "n must be in 1..64" in str(error)
        logs = driver.get_log("browser")                                 # type: ignore[attr-defined]
    severe = [entry for entry in logs if entry["level"] == "SEVERE"
              and "/v1/generate - Failed to load resource" not in entry["message"]]
    assert not severe, severe


def test_the_page_completes_a_prompt_with_a_text_model(chromium: object, tmp_path: object,
                                                       wait_for: Callable[..., Any]) -> None:
    from selenium.webdriver.common.by import By

    from aigc_course.cli import main

    corpus = tmp_path / "corpus.txt"                                     # type: ignore[operator]
    corpus.write_text("The quick brown fox jumps over the lazy dog.\n\n" * 40)
    checkpoint = tmp_path / "g.pt"                                       # type: ignore[operator]
    assert main(["train", "gpt", "--text-file", str(corpus), "--profile", "smoke",
                 "--steps", "10", "--out", str(checkpoint)]) == 0
    driver = chromium
    with LocalServer(checkpoint, env={"OMP_NUM_THREADS": "1"}) as s:
        driver.get(s.url + "/")                                          # type: ignore[attr-defined]
        wait_for(lambda: driver.find_element(By.ID, "go").is_enabled())  # type: ignore[attr-defined]
        assert "text model" in driver.find_element(By.ID, "model").text  # type: ignore[attr-defined]
        assert not driver.find_element(By.ID, "label").is_displayed()    # type: ignore[attr-defined]
        prompt = driver.find_element(By.ID, "prompt")                    # type: ignore[attr-defined]
        prompt.clear()
        prompt.send_keys("The lazy ")
        driver.find_element(By.ID, "go").click()                         # type: ignore[attr-defined]
        texts = wait_for(lambda: driver.find_element(By.ID, "texts").text)  # type: ignore[attr-defined]
        assert str(texts).startswith("The lazy ")
        logs = driver.get_log("browser")                                 # type: ignore[attr-defined]
    assert not [entry for entry in logs if entry["level"] == "SEVERE"], logs
