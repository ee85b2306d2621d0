"""The REST → SOAP field names that Forms 2.0 and associateLead expect, and the served field map."""

from __future__ import annotations

from app.settings import Settings

# Standard lead fields: REST API name → SOAP name (marketo-reference §7.5). Forms 2.0 and
# Munchkin's associateLead only understand the SOAP names; custom fields keep their API name.
REST_TO_SOAP: dict[str, str] = {
    "email": "Email",
    "firstName": "FirstName",
    "lastName": "LastName",
    "middleName": "MiddleName",
    "salutation": "Salutation",
    "title": "Title",
    "company": "Company",
    "website": "Website",
    "phone": "Phone",
    "mobilePhone": "MobilePhone",
    "address": "Address",
    "city": "City",
    "state": "State",
    "country": "Country",
    "postalCode": "PostalCode",
    "billingStreet": "BillingStreet",
    "billingCity": "BillingCity",
    "billingState": "BillingState",
    "billingCountry": "BillingCountry",
    "billingPostalCode": "BillingPostalCode",
    "dateOfBirth": "DateofBirth",
    "gender": "MarketoSocialGender",
    "industry": "Industry",
    "numberOfEmployees": "NumberOfEmployees",
    "annualRevenue": "AnnualRevenue",
    "leadSource": "LeadSource",
    "sicCode": "SICCode",
    "linkedInId": "MarketoSocialLinkedInId",
    "twitterId": "MarketoSocialTwitterId",
    "facebookId": "MarketoSocialFacebookId",
    "unsubscribed": "Unsubscribed",
}

# Segment traits that carry a standard field under another path (marketo-reference §8).
TRAIT_ALIASES: dict[str, str] = {
    "birthday": "dateOfBirth",
    "company.name": "company",
    "company.industry": "industry",
    "company.employee_count": "numberOfEmployees",
    "address.street": "address",
    "address.city": "city",
    "address.state": "state",
    "address.country": "country",
    "address.postalCode": "postalCode",
    "address.zip": "postalCode",
}


def soap_name(rest_name: str) -> str:
    """Return the SOAP name Forms 2.0 uses for a REST field (custom fields are unchanged)."""
    return REST_TO_SOAP.get(rest_name, rest_name)


def standard_field_map() -> dict[str, str]:
    """Return trait path → SOAP name for the standard fields and their Segment aliases."""
    mapping = dict(REST_TO_SOAP)
    mapping.update({trait: soap_name(rest) for trait, rest in TRAIT_ALIASES.items()})
    return mapping


def custom_field_map(settings: Settings) -> dict[str, str]:
    """Return trait path → SOAP (or API) name for the site's mapped custom traits."""
    return {trait: soap_name(m.field) for trait, m in settings.traits.items()}


def field_map(settings: Settings) -> dict[str, str]:
    """Return trait path → SOAP name: the standard fields, their Segment aliases, custom traits.

    The browser reads each trait path from `identify` traits and submits its value under the
    SOAP name; a REST name is its own trait path, so the map covers the §7.5 table as is.
    """
    mapping = standard_field_map()
    mapping.update(custom_field_map(settings))
    return mapping
