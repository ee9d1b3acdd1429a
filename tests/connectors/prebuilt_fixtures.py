"""Fake vendors seeded with one known customer, and a connector pointed at each."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from bridge.config import build_config
from bridge.connectors.prebuilt import PrebuiltConnector, build_prebuilt
from bridge.connectors.prebuilt.credentials import Credentials
from tests.connectors.fakes import hubspot as hs
from tests.connectors.fakes import odoo as od
from tests.connectors.fakes import salesforce as sf
from tests.connectors.fakes import suitecrm as sc
from tests.connectors.fakes import zoho as zo
from tests.connectors.fakes.base import FakeVendor

KNOWN = "+15551230001"
VENDORS = ("hubspot", "salesforce", "zoho", "odoo", "suitecrm")
ZOHO_CONTACT = "4150868000000100001"
SUITE_CONTACT = "7d6a1b2c-0000-4000-8000-000000000001"
SF_CONTACT = "003000000000000AAA"
SF_ACCOUNT = "001000000000000AAA"


def seed(name: str, fake: Any) -> None:
    if name == "hubspot":
        fake.contacts["101"] = {
            "id": "101",
            "_modified_ms": "1796169600000",
            "properties": {
                "firstname": "Alice",
                "lastname": "Chen",
                "phone": KNOWN,
                "email": "alice@example.com",
                "hubspot_owner_id": "88",
                "lifecyclestage": "customer",
                "lastmodifieddate": "2026-12-02T00:00:00Z",
            },
        }
        fake.contacts["102"] = {
            "id": "102",
            "_modified_ms": "1796173200000",
            "properties": {
                "firstname": "Bob",
                "lastname": "Li",
                "mobilephone": "+15551230002",
                "lastmodifieddate": "2026-12-02T01:00:00Z",
            },
        }
        fake.deals["101"] = [
            {
                "id": "9",
                "_contact": "101",
                "properties": {
                    "dealname": "Renewal 2027",
                    "amount": "1200",
                    "dealstage": "contractsent",
                    "closedate": "2026-12-20T00:00:00Z",
                },
            }
        ]
        fake.tickets["101"] = [
            {
                "id": "7",
                "_contact": "101",
                "properties": {
                    "subject": "Router down",
                    "hs_pipeline_stage": "1",
                    "createdate": "2026-11-30T10:00:00Z",
                    "hs_is_closed": "false",
                },
            }
        ]
    elif name == "salesforce":
        fake.contacts[SF_CONTACT] = {
            "Id": SF_CONTACT,
            "Name": "Alice Chen",
            "Phone": KNOWN,
            "Email": "alice@example.com",
            "OwnerId": "005000000000000AAA",
            "Owner": {"Name": "Sue Agent"},
            "AccountId": SF_ACCOUNT,
            "Account": {"Name": "Acme"},
            "LastModifiedDate": "2026-12-02T00:00:00.000+0000",
        }
        for i in range(3):
            cid = f"00300000000000{i}BBB"
            fake.contacts[cid] = {
                "Id": cid,
                "Name": f"Bulk {i}",
                "Phone": f"+1555000000{i}",
                "LastModifiedDate": f"2026-12-02T0{i + 1}:00:00.000+0000",
            }
        fake.opportunities.append(
            {
                "AccountId": SF_ACCOUNT,
                "Name": "Fibre upgrade",
                "Amount": 5000.0,
                "StageName": "Negotiation",
                "CloseDate": "2026-12-31",
            }
        )
        fake.cases.append(
            {
                "ContactId": SF_CONTACT,
                "CaseNumber": "00001026",
                "Subject": "No dial tone",
                "Status": "New",
                "CreatedDate": "2026-12-01T09:00:00.000+0000",
                "IsClosed": False,
            }
        )
        fake.cases.append(
            {
                "ContactId": SF_CONTACT,
                "CaseNumber": "00001001",
                "Subject": "Old",
                "Status": "Closed",
                "CreatedDate": "2026-01-01T09:00:00.000+0000",
                "IsClosed": True,
            }
        )
    elif name == "zoho":
        fake.contacts[ZOHO_CONTACT] = {
            "id": ZOHO_CONTACT,
            "Full_Name": "Alice Chen",
            "First_Name": "Alice",
            "Last_Name": "Chen",
            "Phone": KNOWN,
            "Email": "alice@example.com",
            "Owner": {"name": "Sue Agent", "id": "4150868000000001", "email": "sue@example.com"},
            "Tag": [{"name": "VIP", "id": "1"}],
            "Account_Name": {"name": "Acme", "id": "9"},
            "Modified_Time": "2026-12-02T00:00:00+00:00",
        }
        fake.contacts["4150868000000100002"] = {
            "id": "4150868000000100002",
            "Full_Name": "Bob Li",
            "Mobile": "+15551230002",
            "Modified_Time": "2026-12-02T01:00:00+00:00",
        }
        fake.deals[ZOHO_CONTACT] = [
            {
                "id": "5",
                "Deal_Name": "Fibre upgrade",
                "Amount": 5000,
                "Stage": "Negotiation",
                "Closing_Date": "2026-12-31",
            }
        ]
        fake.cases[ZOHO_CONTACT] = [
            {"id": "6", "Subject": "No dial tone", "Status": "New", "Case_Number": "101"},
            {"id": "7", "Subject": "Old", "Status": "Closed", "Case_Number": "90"},
        ]
    elif name == "suitecrm":
        fake.page_size_cap = 1
        fake.records["Contacts"][SUITE_CONTACT] = {
            "first_name": "Alice",
            "last_name": "Chen",
            "phone_work": KNOWN,
            "email1": "alice@example.com",
            "assigned_user_name": "sue",
            "date_modified": "2026-12-02 00:00:00",
        }
        fake.records["Contacts"]["7d6a1b2c-0000-4000-8000-000000000002"] = {
            "first_name": "Bob",
            "last_name": "Li",
            "phone_mobile": "+15551230002",
            "date_modified": "2026-12-02 01:00:00",
        }
        opp, case, closed = (f"7d6a1b2c-0000-4000-8000-00000000001{i}" for i in range(3))
        fake.records["Opportunities"][opp] = {
            "name": "Fibre upgrade",
            "amount": "5000",
            "sales_stage": "Negotiation/Review",
            "date_closed": "2026-12-31",
        }
        fake.records["Cases"][case] = {
            "case_number": "12",
            "name": "No dial tone",
            "status": "Open_New",
            "state": "Open",
            "date_entered": "2026-12-01 09:00:00",
        }
        fake.records["Cases"][closed] = {
            "case_number": "3",
            "name": "Old",
            "status": "Closed_Closed",
            "state": "Closed",
            "date_entered": "2026-01-01 09:00:00",
        }
        fake.links[(SUITE_CONTACT, "opportunities")] = [("Opportunities", opp)]
        fake.links[(SUITE_CONTACT, "cases")] = [("Cases", case), ("Cases", closed)]
    else:
        fake.partners[42] = {
            "id": 42,
            "name": "Alice Chen",
            "phone": KNOWN,
            "mobile": False,
            "email": "alice@example.com",
            "category_id": [1],
            "user_id": [2, "Sue Agent"],
            "write_date": "2026-12-02 00:00:00",
        }
        fake.partners[43] = {
            "id": 43,
            "name": "Bob Li",
            "phone": False,
            "mobile": "+15551230002",
            "email": False,
            "category_id": [],
            "user_id": False,
            "write_date": "2026-12-02 01:00:00",
        }
        fake.orders.append(
            {
                "id": 5,
                "partner_id": [42, "Alice Chen"],
                "name": "S00042",
                "amount_total": 99.5,
                "state": "sale",
                "date_order": "2026-11-20 10:00:00",
            }
        )


def make_fake(name: str) -> FakeVendor:
    fakes = {
        "hubspot": hs.FakeHubSpot,
        "salesforce": sf.FakeSalesforce,
        "zoho": zo.FakeZoho,
        "odoo": od.FakeOdoo,
        "suitecrm": sc.FakeSuiteCrm,
    }
    return fakes[name]()


def credentials_for(name: str) -> dict[str, str]:
    if name == "hubspot":
        return {"token": hs.TOKEN}
    if name == "salesforce":
        return {"client_id": sf.CLIENT_ID, "client_secret": sf.CLIENT_SECRET}
    if name == "zoho":
        return {
            "client_id": zo.CLIENT_ID,
            "client_secret": zo.CLIENT_SECRET,
            "refresh_token": zo.REFRESH_TOKEN,
        }
    if name == "suitecrm":
        return {"client_id": sc.CLIENT_ID, "client_secret": sc.CLIENT_SECRET}
    return {"username": od.LOGIN, "token": od.API_KEY}


def crm_values(name: str, url: str, **extra: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"connector": name, "base_url": url, "timeout_ms": 5000}
    if name == "odoo":
        values["database"] = od.DB
    if name == "zoho":  # the accounts server is another host in real life
        values["token_url"] = f"{url}/oauth/v2/token"
    values.update(extra)
    return values


@dataclass
class Pair:
    name: str
    fake: Any
    connector: PrebuiltConnector
    secrets: tuple[str, ...]


@asynccontextmanager
async def vendor(
    name: str, *, creds: dict[str, str] | None = None, **extra: Any
) -> AsyncIterator[Pair]:
    fake = make_fake(name)
    seed(name, fake)
    await fake.start()
    config = build_config({"crm": crm_values(name, fake.url, **extra)}, {}, runtime=False)
    credentials = Credentials(creds if creds is not None else credentials_for(name))
    connector = build_prebuilt(config.crm, {}, credentials)
    await connector.start()
    try:
        yield Pair(name, fake, connector, tuple(credentials_for(name).values()))
    finally:
        await connector.stop()
        await fake.close()
