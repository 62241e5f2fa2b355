"""The simulated agency's website: its pages, guides, campaigns, messages, names and personas."""

from __future__ import annotations

import random
from bisect import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import accumulate
from typing import Generic, TypeVar

T = TypeVar("T")


class _Pool(Generic[T]):
    """Weighted choice with precomputed cumulative weights."""

    __slots__ = ("cum", "items")

    def __init__(self, weights: Mapping[T, float]) -> None:
        self.items = list(weights)
        self.cum = list(accumulate(weights.values()))

    def pick(self, rng: random.Random) -> T:
        return self.items[bisect(self.cum, rng.random() * self.cum[-1])]


SITE = "https://webstudio.example"
SERVICES = ("web-design", "seo", "branding")
CASE_STUDIES = ("harbour-coffee-rebrand", "northfield-clinic-website", "alpine-outdoor-seo")
BLOG = (
    "how-much-does-a-website-cost", "seo-basics-for-small-business", "local-seo-checklist",
    "choosing-a-brand-colour-palette", "core-web-vitals-explained", "website-redesign-mistakes",
)  # fmt: skip
GUIDES = ("seo-checklist", "website-brief-template", "brand-strategy-workbook", "local-seo-guide")
ASSETS = dict.fromkeys(GUIDES, "guide") | dict.fromkeys(CASE_STUDIES, "case_study")
CAMPAIGNS = (
    ("Welcome to Webstudio insights", "/blog"),
    ("5 signs your website needs a redesign", "/blog/website-redesign-mistakes"),
    ("How much does a website really cost?", "/blog/how-much-does-a-website-cost"),
    ("Local SEO in 30 minutes", "/blog/local-seo-checklist"),
    ("Case study: Harbour Coffee's rebrand", "/case-studies/harbour-coffee-rebrand"),
    ("Core Web Vitals, explained", "/blog/core-web-vitals-explained"),
    ("Picking a brand colour palette", "/blog/choosing-a-brand-colour-palette"),
    ("Our pricing, demystified", "/pricing"),
    ("Case study: Northfield Clinic's new site", "/case-studies/northfield-clinic-website"),
    ("SEO basics for small businesses", "/blog/seo-basics-for-small-business"),
    ("What clients say about us", "/testimonials"),
    ("Ready to start your project?", "/contact"),
)
REFERRERS = _Pool({"": 4, "https://www.google.com/": 5, "https://www.linkedin.com/": 2,
                   "https://www.bing.com/": 1, "https://duckduckgo.com/": 1})  # fmt: skip
INTENT_ACTIONS = _Pool({"quote": 0.35, "call": 0.25, "form": 0.25, "reply": 0.15})
QUOTES = (
    ("web-design", "Could you send a quote for a 10-page site?"),
    ("web-design", "We need a new website with online booking. What would this cost?"),
    ("seo", "What's your price for a 6-month SEO retainer for a local business?"),
    ("branding", "Please quote for a full rebrand: logo, brand guidelines and website refresh."),
)
SALES_MESSAGES = (
    "We're planning a website relaunch in Q2, budget around 15k. Can we talk?",
    "Looking for an agency to redo our branding and site this spring. Please send a proposal.",
    "Our current site is slow and ranks badly. We'd like a proposal for a redesign plus SEO.",
)
REPLY_QUESTIONS = (
    "What would this cost for us?",
    "Thanks, useful. Do you have availability in March, and what would a redesign cost?",
    "Interesting read. Could you send pricing for the SEO package?",
)
SUPPORT_QUESTIONS = (
    "Our contact form stopped sending emails, can you take a look?",
    "Can you resend last month's invoice?",
)
JOB_MESSAGES = (
    "Hi, I'm looking for an internship in web design this summer. My CV is attached.",
    "Are you hiring junior developers? Please find my resume attached.",
    "Do you have any job openings for a graduate SEO role?",
    "I'm a student writing my thesis on branding. Could I interview someone from your team?",
)
SPAM_MESSAGES = (
    "We can boost your Google ranking with 500 high-quality backlinks! Reply for our SEO deal.",
    "Congratulations you won a $1000 gift card!!! Claim now at http://prize-claim.example",
    "Invest in crypto today and double your bitcoin in 7 days, guaranteed returns!!!",
    "Buy cheap guest posts on DA 90 sites, only $20 each. Bulk discount available.",
)
FIRST = (
    "Anna", "Ben", "Chloe", "Daniel", "Emma", "Felix", "Grace", "Hannah", "Isaac", "Jack", "Julia",
    "Karim", "Laura", "Leo", "Lucy", "Maria", "Mark", "Mia", "Nadia", "Noah", "Olivia", "Omar",
    "Paul", "Priya", "Rachel", "Ravi", "Sara", "Sam", "Sofia", "Tom", "Una", "Victor", "Wei",
    "Yusuf", "Zoe", "Ahmed", "Beth", "Carlos", "Dina", "Elena", "Finn", "Gemma", "Hugo", "Ines",
    "Jonas", "Kate", "Lars", "Maya",
)  # fmt: skip
LAST = (
    "Smith", "Jones", "Patel", "Müller", "Schmidt", "Brown", "Garcia", "Rossi", "Nowak",
    "Kowalski", "Jansen", "Dubois", "Martin", "Silva", "Novak", "Berg", "Larsen", "Walsh",
    "Murphy", "Kelly", "Khan", "Ali", "Chen", "Wang", "Lee", "Kim", "Nguyen", "Singh", "Taylor",
    "Wilson", "Evans", "Hughes", "Clarke", "Wright", "Green", "Baker", "Hall", "Fischer", "Weber",
    "Meyer", "Bakker", "Visser", "Moreau", "Lopez", "Costa", "Ferreira", "Olsen", "Lund",
)  # fmt: skip
PREFIX = (
    "North", "South", "Bright", "Blue", "Green", "Red", "Oak", "Harbour", "River", "Summit",
    "Alpine", "Urban", "Silver", "Golden", "Maple", "Cedar", "Stone", "Iron", "Clear", "Swift",
    "Pioneer", "Crown", "Atlas", "Orbit", "Nova", "Pine", "Lake", "Ridge", "Meadow", "Vale",
)  # fmt: skip
CORE = (
    "field", "wind", "gate", "bridge", "stone", "view", "point", "works", "craft", "line", "park",
    "wood", "light", "path", "brook", "side", "ford", "mark", "star", "well", "hill", "dale",
    "port", "way", "land", "haven", "crest", "hurst", "mere", "shore",
)  # fmt: skip
SUFFIXES = ("Ltd", "Group", "& Co", "Studio", "Clinic", "Foods", "Logistics", "Partners")
INDUSTRIES = _Pool({
    "Retail": 3, "Healthcare": 2, "Professional Services": 3, "Manufacturing": 2, "Hospitality": 2,
    "Software": 2, "Real Estate": 1, "Non-profit": 1, "Finance": 1, "Construction": 1,
    "Food & Beverage": 2, "Education": 1,
})  # fmt: skip
COUNTRIES = _Pool({"GB": 30, "US": 15, "DE": 12, "NL": 8, "IE": 6, "FR": 6, "ES": 4, "SE": 4,
                   "DK": 3, "AU": 3, "CA": 3})  # fmt: skip
FREE_MAIL = ("gmail.com", "outlook.com", "yahoo.com", "hotmail.com", "icloud.com", "gmx.de")
DISPOSABLE = ("mailinator.com", "10minutemail.com", "guerrillamail.com", "yopmail.com")
RIVALS = {"rival-agency.example": "Rival Agency", "pixelforge.example": "PixelForge Studio",
          "brightseo.example": "BrightSEO", "northcreative.example": "North Creative"}  # fmt: skip
UNIVERSITIES = ("University of Leeds", "TU Delft", "Kingston University", "Trinity College Dublin")
TITLES = {
    "senior": ("Founder", "CEO", "Managing Director", "Owner", "Head of Marketing",
               "Marketing Director", "Chief Marketing Officer", "VP Marketing", "Head of Digital"),
    "mid": ("Marketing Manager", "Digital Marketing Manager", "Brand Manager", "E-commerce Manager",
            "Communications Manager", "Operations Manager", "Product Marketing Manager"),
    "junior": ("Marketing Assistant", "Marketing Coordinator", "Content Writer",
               "Social Media Executive", "Office Administrator"),
    "student": ("Student", "Graduate", "Design Student", "Computer Science Student", "Intern"),
    "rival": ("SEO Specialist", "Account Director", "Web Designer", "Business Development Manager"),
    "spam": ("SEO Expert", "Manager", "CEO", "Director", "Sales", ""),
}  # fmt: skip
_KEY = {f"/services/{s}": 3.0 for s in SERVICES} | {"/pricing": 2.5, "/testimonials": 1.0}
_READ = {f"/blog/{b}": 2.0 for b in BLOG} | {"/blog": 1.0, "/resources/guides": 1.5, "/": 1.0}
_CASES = {f"/case-studies/{c}": 1.5 for c in CASE_STUDIES} | {"/case-studies": 1.0}
_SIZES = {(1, 9): 3.0, (10, 49): 3.0, (50, 249): 2.0, (250, 999): 1.2, (1000, 10000): 0.8}


@dataclass(frozen=True)
class Persona:
    """How one kind of visitor behaves; counts are (low, high) inclusive ranges."""

    name: str
    share: float
    intent: str  # the true buying intent: high, medium, low or none
    visits: tuple[int, int]
    gap_days: tuple[int, int]
    pages: tuple[int, int]  # per visit, before scaling to reach events_per_lead
    paths: Mapping[str, float]
    downloads: tuple[int, int]
    open_rate: float
    click_rate: float
    unsubscribe_rate: float
    titles: Mapping[str, float]
    sizes: Mapping[tuple[int, int], float]
    free_mail: float


PERSONAS = (
    Persona("ready_buyer", 0.08, "high", (4, 7), (2, 9), (2, 5),
            _KEY | _CASES | {"/": 1, "/about": 1, "/contact": 0.5}, (1, 3), 0.8, 0.35, 0.0,
            {"senior": 6, "mid": 3.5, "junior": 0.5},
            {(2, 9): 0.7, (10, 49): 3.5, (50, 249): 4, (250, 500): 1.5, (501, 5000): 0.3}, 0.05),
    Persona("researcher", 0.30, "medium", (2, 5), (1, 12), (1, 4),
            _READ | {"/services/web-design": 0.4, "/services/seo": 0.4,
                     "/services/branding": 0.3, "/case-studies": 0.4, "/pricing": 0.3},
            (1, 3), 0.4, 0.15, 0.01, {"senior": 2.5, "mid": 5, "junior": 2.5}, _SIZES, 0.15),
    Persona("nurture_reader", 0.30, "low", (1, 2), (3, 20), (1, 3), _READ | {"/about": 0.5},
            (0, 0), 0.6, 0.12, 0.01, {"senior": 2, "mid": 4.5, "junior": 3.5}, _SIZES, 0.3),
    Persona("job_seeker", 0.08, "none", (1, 3), (1, 10), (2, 4),
            {"/careers": 4, "/careers/junior-web-designer": 2, "/careers/seo-intern": 2,
             "/about": 2, "/team": 2, "/blog": 1, "/": 1}, (0, 0), 0.3, 0.1, 0.05,
            {"student": 1}, {(1, 1): 1}, 1.0),
    Persona("competitor", 0.03, "none", (2, 6), (1, 10), (2, 5),
            _KEY | {"/pricing": 6} | _CASES | {"/": 1, "/about": 1},
            (0, 2), 0.3, 0.05, 0.02, {"rival": 1}, {(5, 80): 1}, 0.0),
    Persona("spammer", 0.05, "none", (1, 3), (1, 15), (1, 2),
            {"/": 2, "/contact": 3, "/blog": 1}, (0, 0), 0, 0, 0, {"spam": 1}, {(1, 50): 1}, 0),
    Persona("existing_customer", 0.06, "low", (2, 5), (3, 15), (1, 4),
            {"/login": 4, "/support": 3, "/support/hosting": 2, "/support/invoices": 2, "/": 0.5,
             "/blog": 0.5}, (0, 0), 0.5, 0.08, 0.0, {"senior": 1, "mid": 1}, _SIZES, 0.1),
    Persona("cold", 0.10, "low", (1, 1), (1, 1), (1, 1), {"/": 2} | {f"/blog/{b}": 1 for b in BLOG},
            (0, 0), 0.0, 0.0, 0.0, {"senior": 1.5, "mid": 4, "junior": 4.5}, _SIZES, 0.4),
)  # fmt: skip
_PERSONA_CUM = list(accumulate(p.share for p in PERSONAS))
_PAGE_POOLS = {p.name: _Pool(p.paths) for p in PERSONAS}
_TITLE_POOLS = {p.name: _Pool(p.titles) for p in PERSONAS}
_SIZE_POOLS = {p.name: _Pool(p.sizes) for p in PERSONAS}
_COMPANIES = len(PREFIX) * len(CORE)
_NAME_SPACE = len(FIRST) * len(LAST) * _COMPANIES
