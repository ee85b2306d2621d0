"""Default data of the fake Marketo: activity types, folders, campaigns and forms."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.devtools.fake_marketo.lists import create_folder

if TYPE_CHECKING:
    from app.devtools.fake_marketo.core import FakeMarketo


def load_fixtures(fake: FakeMarketo) -> None:
    """Add the defaults every test can rely on (ids are part of the fake's public contract)."""
    fake.add_activity_type(
        100001,
        "signedUp",
        name="Signed Up",
        primary=("plan", "string"),
        attributes=(
            ("price", "currency", "Price"),
            ("currency", "string", "Currency"),
            ("trialDays", "integer", "Trial Days"),
        ),
    )
    fake.add_activity_type(
        100002,
        "productViewed",
        name="Product Viewed",
        primary=("productId", "string"),
        attributes=(("productName", "text", "Product Name"), ("price", "float", "Price")),
    )
    fake.add_activity_type(
        100003,
        "orderCompleted",
        name="Order Completed",
        primary=("orderId", "string"),
        attributes=(
            ("revenue", "currency", "Revenue"),
            ("itemCount", "integer", "Items"),
            ("coupon", "string", "Coupon"),
            ("placedAt", "datetime", "Placed At"),
        ),
    )
    fake.add_activity_type(
        100004,
        "draftThing",
        name="Draft Thing",
        primary=("thing", "string"),
        status="draft",
    )
    create_folder(fake, "Lead Database", None, folder_id=14)
    create_folder(fake, "Gateway", 14, folder_id=31)
    fake.add_campaign(2001, "Gateway requested campaign")
    fake.add_campaign(2002, "Nightly batch", kind="batch", requestable=False)
    fake.add_form(1003, "Gateway background identify")
    fake.add_form(1004, "Old contact form", status="draft")
