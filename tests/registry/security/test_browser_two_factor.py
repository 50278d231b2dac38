"""A coordinator, who must use two-factor sign-in, sets it up and signs in with a code, in a real
Chromium under the site's Content-Security-Policy (the QR code is inline SVG, no script)."""
import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests import factories as f
from tests.registry.web.test_browser_entry import browser_page, screenshot, sign_in  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_coordinator_sets_up_two_factor_and_signs_in_with_a_code(browser_page, live_server, settings):  # noqa: F811
    settings.TWO_FACTOR_REQUIRED_ROLES = {"coordinator"}
    coordinator = f.user("coordinator", memberships=[("MUC", "coordinator")])
    page, base = browser_page, live_server.url
    refused = []
    page.on("console", lambda message: refused.append(message.text) if "Content Security Policy" in message.text
            else None)

    sign_in(page, base, "coordinator")
    assert "/accounts/two-factor/setup/" in page.url
    qr = page.locator(".qr svg").bounding_box()
    assert qr["width"] > 100 and qr["height"] > 100
    screenshot(page, "two-factor-setup.png")
    device = TOTPDevice.objects.get(user=coordinator, confirmed=False)
    page.fill("#id_code", f"{totp(device.bin_key):06d}")
    with page.expect_navigation():
        page.press("#id_code", "Enter")
    assert "two-factor" not in page.url and "Two-factor sign-in is on" in page.content()

    with page.expect_navigation():
        page.click("text=Sign out")
    sign_in(page, base, "coordinator")
    assert "/accounts/two-factor/?next=" in page.url
    page.fill("#id_code", f"{totp(device.bin_key, drift=1):06d}")
    with page.expect_navigation():
        page.press("#id_code", "Enter")
    assert "two-factor" not in page.url and "/accounts/login/" not in page.url
    page.goto(f"{base}/security/")
    assert "two-factor code accepted" in page.content()
    assert not refused, refused
