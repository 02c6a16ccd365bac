"""Generate the synthetic verifiable task: short business records with a question, a step-by-step
`reasoning_content` and a final answer whose last number is the result (graded by the numeric grader).

    python data/sample/make_business_math.py                 # writes business_math.jsonl (800) and
                                                             # business_math_validation.jsonl (200)
    python data/sample/make_business_math.py --train 80 --validation 20 --seed 7 --out /tmp/bm

Seeded (default seed 15): the same arguments write the same files byte for byte. Seven kinds of record,
drawn in turn at random: invoice totals (line items, a discount, then sales tax), late fees (days late
between two dates, a flat fee plus a daily fee, capped), days between two dates, gross pay with
overtime, prorated subscriptions, shipping fees by weight with an express surcharge, and tiered sales
commission. Money is rounded half up to cents at each step the reasoning shows. Every line is one chat
conversation in the format `llmft data validate` accepts:

    {"id": "bm-000001", "messages": [{"role": "user", "content": QUESTION},
     {"role": "assistant", "reasoning_content": STEPS, "content": "The total due is $127.44."}],
     "metadata": {"task": "invoice_total", "answer": 127.44}}

`metadata.answer` holds the result as a number (a grader may name it: `reference_field: metadata.answer`);
no question appears twice, in or across the files. Companies and people are made up.
"""

import argparse
import datetime as dt
import json
import random
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

COMPANIES = ["Harbor Supplies", "Northwind Tools", "Bluebell Catering", "Granite Print Co.", "Maple Office",
             "Orchid Logistics", "Summit Clean", "Kestrel Labs", "Copperleaf Cafe", "Pinewood Florists",
             "Atlas Freight", "Juniper Design", "Lakeside Dental", "Redwood Bakery", "Silverline Taxis"]
PEOPLE = ["Ana", "Ben", "Chloe", "Dev", "Elif", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi", "Luca",
          "Mei", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sami", "Tara"]
ITEMS = [("printer paper box", 8, 30), ("toner cartridge", 35, 90), ("desk lamp", 18, 60), ("office chair", 90, 260),
         ("USB keyboard", 15, 45), ("coffee bean bag", 9, 25), ("cleaning kit", 6, 20), ("monitor stand", 22, 70),
         ("shipping label roll", 4, 15), ("whiteboard", 40, 120)]
PLANS = [("Basic", 12, 30), ("Team", 30, 90), ("Business", 80, 240)]
CENT = Decimal("0.01")


def money(value) -> Decimal:
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def usd(value: Decimal) -> str:
    return f"${value:,.2f}"


def date(value: dt.date) -> str:
    return value.isoformat()


def invoice_total(rng: random.Random) -> tuple[str, str, str, float]:
    company = rng.choice(COMPANIES)
    lines = []
    for name, low, high in rng.sample(ITEMS, rng.randint(2, 3)):
        lines.append((name, rng.randint(1, 12), money(rng.randint(low * 4, high * 4) / 4)))
    discount, tax = rng.choice([0, 5, 10, 15]), rng.choice([5, 6, 7.5, 8, 10])
    items = ", ".join(f"{qty} x {name} at {usd(price)} each" for name, qty, price in lines)
    question = (f"{company} orders {items}. "
                + (f"A {discount}% discount applies to the subtotal, then " if discount else "Then ")
                + f"{tax}% sales tax is added. What is the total due?")
    steps, subtotal = [], Decimal(0)
    for name, qty, price in lines:
        amount = money(qty * price)
        steps.append(f"{name.capitalize()}: {qty} x {usd(price)} = {usd(amount)}.")
        subtotal += amount
    steps.append(f"Subtotal: {' + '.join(usd(money(q * p)) for _, q, p in lines)} = {usd(subtotal)}.")
    taxable = subtotal
    if discount:
        cut = money(subtotal * Decimal(discount) / 100)
        taxable = subtotal - cut
        steps.append(f"Discount {discount}% of {usd(subtotal)} = {usd(cut)}, so {usd(subtotal)} - {usd(cut)} = {usd(taxable)}.")
    tax_amount = money(taxable * Decimal(str(tax)) / 100)
    total = taxable + tax_amount
    steps.append(f"Tax {tax}% of {usd(taxable)} = {usd(tax_amount)}.")
    steps.append(f"Total: {usd(taxable)} + {usd(tax_amount)} = {usd(total)}.")
    return question, "\n".join(steps), f"The total due is {usd(total)}.", float(total)


def late_fee(rng: random.Random) -> tuple[str, str, str, float]:
    company, amount = rng.choice(COMPANIES), money(rng.randint(200, 5000))
    due = dt.date(2024, 1, 1) + dt.timedelta(days=rng.randint(0, 330))
    paid = due + dt.timedelta(days=rng.choice([0, rng.randint(1, 9), rng.randint(10, 45)]))
    flat, daily, cap = money(rng.choice([10, 15, 20, 25])), money(rng.choice([1.5, 2, 2.5, 3, 5])), rng.choice([5, 10])
    question = (f"An invoice from {company} for {usd(amount)} was due on {date(due)} and paid on {date(paid)}. "
                f"A late payment costs a flat {usd(flat)} plus {usd(daily)} per day late, capped at {cap}% of the "
                f"invoice. What is the late fee?")
    days = (paid - due).days
    if days == 0:
        steps = f"Paid on the due date, {date(due)}: 0 days late, so there is no late fee."
        return question, steps, "The late fee is $0.00.", 0.0
    fee, limit = flat + daily * days, money(amount * cap / 100)
    steps = [f"Days late: from {date(due)} to {date(paid)} is {days} days.",
             f"Fee before the cap: {usd(flat)} + {days} x {usd(daily)} = {usd(flat)} + {usd(daily * days)} = {usd(fee)}.",
             f"Cap: {cap}% of {usd(amount)} = {usd(limit)}."]
    result = min(fee, limit)
    steps.append(f"{usd(fee)} is {'above' if fee > limit else 'within'} the cap, so the fee is {usd(result)}.")
    return question, "\n".join(steps), f"The late fee is {usd(result)}.", float(result)


def days_between(rng: random.Random) -> tuple[str, str, str, float]:
    start = dt.date(2024, 1, 1) + dt.timedelta(days=rng.randint(0, 300))
    end = start + dt.timedelta(days=rng.randint(5, 120))
    person, company = rng.choice(PEOPLE), rng.choice(COMPANIES)
    question = (f"{person}'s service contract with {company} runs from {date(start)} to {date(end)}, "
                f"the end date not counted. How many days does it run?")
    steps, day = [], start
    while (day.year, day.month) < (end.year, end.month):
        following = (day.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
        steps.append(f"From {date(day)} to {date(following)}: {(following - day).days} days.")
        day = following
    steps.append(f"From {date(day)} to {date(end)}: {(end - day).days} days.")
    total = (end - start).days
    parts = [line.rsplit(": ", 1)[1].removesuffix(" days.") for line in steps]
    steps.append(f"Total: {' + '.join(parts)} = {total} days." if len(parts) > 1 else f"Total: {total} days.")
    return question, "\n".join(steps), f"The contract runs {total} days.", float(total)


def gross_pay(rng: random.Random) -> tuple[str, str, str, float]:
    person, company = rng.choice(PEOPLE), rng.choice(COMPANIES)
    rate, hours = money(rng.randint(56, 140) / 4), rng.randint(30, 55)
    question = (f"{person} works {hours} hours this week at {company} at {usd(rate)} an hour. Hours over 40 are paid "
                f"at 1.5 times the rate. What is {person}'s gross pay for the week?")
    regular, overtime = min(hours, 40), max(hours - 40, 0)
    base = money(regular * rate)
    steps = [f"Regular hours: {regular} x {usd(rate)} = {usd(base)}."]
    total = base
    if overtime:
        extra_rate = money(rate * Decimal("1.5"))
        extra = money(overtime * extra_rate)
        total = base + extra
        steps += [f"Overtime rate: 1.5 x {usd(rate)} = {usd(extra_rate)}.",
                  f"Overtime hours: {hours} - 40 = {overtime}; {overtime} x {usd(extra_rate)} = {usd(extra)}.",
                  f"Gross pay: {usd(base)} + {usd(extra)} = {usd(total)}."]
    else:
        steps.append(f"No hours over 40, so the gross pay is {usd(total)}.")
    return question, "\n".join(steps), f"The gross pay is {usd(total)}.", float(total)


def prorated(rng: random.Random) -> tuple[str, str, str, float]:
    name, low, high = rng.choice(PLANS)
    price, company = money(rng.randint(low, high)), rng.choice(COMPANIES)
    month = rng.randint(1, 12)
    first = dt.date(2024, month, 1)
    days_in_month = ((first + dt.timedelta(days=32)).replace(day=1) - first).days
    start = rng.randint(2, days_in_month)
    question = (f"{company} starts the {name} plan ({usd(price)} a month) on {date(first.replace(day=start))}. "
                f"The first bill charges only the days left in the month, the start day included. What is the first "
                f"bill?")
    used = days_in_month - start + 1
    daily = price / days_in_month
    total = money(price * used / days_in_month)
    steps = (f"{first:%B} 2024 has {days_in_month} days.\n"
             f"Days charged: {days_in_month} - {start} + 1 = {used}.\n"
             f"Charge: {usd(price)} x {used} / {days_in_month} = {used} x {daily:.4f} = {usd(total)}.")
    return question, steps, f"The first bill is {usd(total)}.", float(total)


def shipping_fee(rng: random.Random) -> tuple[str, str, str, float]:
    company = rng.choice(COMPANIES)
    weight, base, per_kg = rng.randint(1, 40), money(rng.choice([4.9, 6.5, 7.25, 9])), money(rng.choice([0.8, 1.2, 1.5, 2]))
    express = rng.random() < 0.5
    surcharge = rng.choice([20, 25, 30]) if express else 0
    question = (f"{company} ships a {weight} kg parcel. The fee is {usd(base)} for the first kilogram plus "
                f"{usd(per_kg)} for each further kilogram"
                + (f", and express delivery adds {surcharge}% to the fee." if express else ", sent standard.")
                + " What is the shipping fee?")
    extra = money((weight - 1) * per_kg)
    fee = base + extra
    steps = [f"Further kilograms: {weight} - 1 = {weight - 1}; {weight - 1} x {usd(per_kg)} = {usd(extra)}.",
             f"Fee: {usd(base)} + {usd(extra)} = {usd(fee)}."]
    if express:
        added = money(fee * surcharge / 100)
        steps.append(f"Express: {surcharge}% of {usd(fee)} = {usd(added)}; {usd(fee)} + {usd(added)} = {usd(fee + added)}.")
        fee += added
    return question, "\n".join(steps), f"The shipping fee is {usd(fee)}.", float(fee)


def commission(rng: random.Random) -> tuple[str, str, str, float]:
    person = rng.choice(PEOPLE)
    sales = money(rng.randint(20, 400) * 100)
    threshold, low, high = money(rng.choice([5000, 10000, 15000])), rng.choice([3, 4, 5]), rng.choice([6, 8, 10])
    question = (f"{person} sold {usd(sales)} this month. Commission is {low}% on sales up to {usd(threshold)} and "
                f"{high}% on the part above it. What is {person}'s commission?")
    first = money(min(sales, threshold) * low / 100)
    steps = [f"First tier: {low}% of {usd(min(sales, threshold))} = {usd(first)}."]
    total = first
    if sales > threshold:
        above = sales - threshold
        second = money(above * high / 100)
        total = first + second
        steps += [f"Above the threshold: {usd(sales)} - {usd(threshold)} = {usd(above)}; {high}% of it = {usd(second)}.",
                  f"Commission: {usd(first)} + {usd(second)} = {usd(total)}."]
    else:
        steps.append(f"Nothing above {usd(threshold)}, so the commission is {usd(total)}.")
    return question, "\n".join(steps), f"The commission is {usd(total)}.", float(total)


TASKS = [invoice_total, late_fee, days_between, gross_pay, prorated, shipping_fee, commission]


def records(count: int, rng: random.Random, seen: set[str], start: int) -> list[dict]:
    out = []
    while len(out) < count:
        task = rng.choice(TASKS)
        question, reasoning, answer, value = task(rng)
        if question in seen:
            continue
        seen.add(question)
        out.append({"id": f"bm-{start + len(out):06d}",
                    "messages": [{"role": "user", "content": question},
                                 {"role": "assistant", "reasoning_content": reasoning, "content": answer}],
                    "metadata": {"task": task.__name__, "answer": value}})
    return out


def write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=800, help="training records (default 800)")
    parser.add_argument("--validation", type=int, default=200, help="validation records (default 200)")
    parser.add_argument("--seed", type=int, default=15, help="random seed (default 15)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="folder to write to")
    args = parser.parse_args(argv)
    rng, seen = random.Random(args.seed), set()
    args.out.mkdir(parents=True, exist_ok=True)
    write(args.out / "business_math.jsonl", records(args.train, rng, seen, 1))
    write(args.out / "business_math_validation.jsonl", records(args.validation, rng, seen, args.train + 1))


if __name__ == "__main__":
    main()
