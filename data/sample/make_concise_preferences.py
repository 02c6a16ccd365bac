"""Generate the DPO proof set: business support questions, each with a concise correct answer (chosen) and a
worse one (rejected): a wrong number, a rambling reply, or an answer to another question.

    python data/sample/make_concise_preferences.py           # writes concise_preferences.jsonl (300) and
                                                             # concise_preferences_validation.jsonl (60)
    python data/sample/make_concise_preferences.py --train 30 --validation 6 --seed 7 --out /tmp/cp

Seeded (default seed 16): the same arguments write the same files byte for byte. Each question states the
policy it is about (free-shipping threshold, late fee, volume discount, per-seat plan price, return window,
warranty length, support hours, loyalty vouchers), so the correct answer follows from the question alone and
a small model can learn to prefer it. Rejected answers come in three kinds, drawn in turn:

- `wrong`: the chosen answer's shape and length, with a wrong number or the wrong yes/no;
- `rambling`: the right answer buried in pleasantries, hedging and filler;
- `off_topic`: a concise answer to a different question.

Every line is one preference record in the format `llmft data validate --kind preference` accepts:

    {"id": "cp-000001", "prompt": QUESTION, "chosen": "Shipping is free: $62.00 is over the $50.00 threshold.",
     "rejected": "Shipping is $4.90.", "metadata": {"task": "shipping", "rejected_kind": "wrong"}}

No question appears twice, in or across the files. Companies are made up.
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
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
OPENERS = ["Thank you so much for reaching out to us today, we truly appreciate your question!",
           "Great question, and thanks for being such a valued customer of ours!",
           "Hello there! I hope you are having a wonderful day so far.",
           "Thanks for getting in touch, that is something a lot of our customers ask about."]
HEDGES = ["Policies like this can be a little confusing, so let me walk through it carefully.",
          "There are quite a few things to consider here, and every situation is a bit different.",
          "I want to make sure I give you the most complete picture possible before answering.",
          "Before I get to it, it is worth remembering that our team is always here to help."]
CLOSERS = ["I hope this helps, and please do not hesitate to reach out again if anything else comes up!",
           "Let me know if there is anything else at all I can do for you, we are always happy to help.",
           "Thanks again for your patience, and have a fantastic rest of your day!",
           "If you have any other questions, our friendly support team is available to assist you anytime."]
KINDS = ("wrong", "rambling", "off_topic")
CENT = Decimal("0.01")


def money(value) -> Decimal:
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def usd(value: Decimal) -> str:
    return f"${value:,.2f}"


def near(rng: random.Random, value: Decimal) -> Decimal:
    """A wrong amount near `value`, never equal to it."""
    while (wrong := money(value * Decimal(rng.choice([0.5, 0.8, 1.25, 1.5, 2])) + rng.choice([0, 5, 10]))) == value:
        pass
    return wrong


def shipping(rng: random.Random):
    company, threshold, fee = rng.choice(COMPANIES), rng.choice([35, 50, 75, 100]), money(rng.choice([4.9, 6.5, 8, 9.9]))
    order = money(rng.randint(threshold // 2 * 4, threshold * 2 * 4) / 4)
    question = (f"{company} charges {usd(fee)} shipping on orders under {usd(Decimal(threshold))} and ships free "
                f"from {usd(Decimal(threshold))} up. My order comes to {usd(order)}. What will shipping cost?")
    if order >= threshold:
        return question, f"Shipping is free: {usd(order)} is over the {usd(Decimal(threshold))} threshold.", \
            f"Shipping is {usd(fee)}: {usd(order)} is under the {usd(Decimal(threshold))} threshold."
    return question, f"Shipping is {usd(fee)}: {usd(order)} is under the {usd(Decimal(threshold))} threshold.", \
        f"Shipping is free: {usd(order)} is over the {usd(Decimal(threshold))} threshold."


def late_fee(rng: random.Random):
    company, flat, daily = rng.choice(COMPANIES), money(rng.choice([5, 10, 15, 20])), money(rng.choice([1, 1.5, 2, 2.5]))
    days = rng.randint(2, 20)
    fee = flat + daily * days
    question = (f"My invoice from {company} is {days} days late. They charge a flat {usd(flat)} plus {usd(daily)} "
                "per day late. How much is the late fee?")
    return question, f"The late fee is {usd(fee)} ({usd(flat)} + {days} x {usd(daily)}).", \
        f"The late fee is {usd(near(rng, fee))} ({usd(flat)} + {days} x {usd(daily)})."


def discount(rng: random.Random):
    company, price, percent = rng.choice(COMPANIES), money(rng.randint(8, 60)), rng.choice([5, 10, 15, 20])
    minimum, units = rng.choice([10, 20, 25, 50]), rng.randint(5, 80)
    full = money(price * units)
    total = money(full * (100 - percent) / 100) if units >= minimum else full
    question = (f"{company} sells a part at {usd(price)} each, with {percent}% off orders of {minimum} or more. "
                f"What do {units} of them cost?")
    reasons = [f"{percent}% off {usd(full)}", f"under {minimum} units, so no discount"]
    right, wrong = (0, 1) if units >= minimum else (1, 0)
    wrong_total = full if units >= minimum else money(full * (100 - percent) / 100)
    return question, f"{units} parts cost {usd(total)} ({reasons[right]}).", \
        f"{units} parts cost {usd(wrong_total)} ({reasons[wrong]})."


def seats(rng: random.Random):
    plan, price = rng.choice([("Basic", 8), ("Team", 15), ("Business", 30), ("Enterprise", 55)])
    users = rng.randint(3, 40)
    total = money(price * users)
    question = (f"The {plan} plan is {usd(Decimal(price))} per user per month. We have {users} users. What is our "
                "monthly bill?")
    return question, f"Your monthly bill is {usd(total)} ({users} users x {usd(Decimal(price))}).", \
        f"Your monthly bill is {usd(near(rng, total))} ({users} users x {usd(Decimal(price))})."


def returns(rng: random.Random):
    company, window = rng.choice(COMPANIES), rng.choice([14, 30, 60])
    delivered = dt.date(2024, 1, 1) + dt.timedelta(days=rng.randint(0, 330))
    elapsed = rng.randint(3, window * 2)
    asked = delivered + dt.timedelta(days=elapsed)
    question = (f"{company} accepts returns within {window} days of delivery. My order arrived on "
                f"{delivered.isoformat()} and today is {asked.isoformat()}. Can I still return it?")
    if elapsed <= window:
        return question, f"Yes: it is {elapsed} days since delivery, within the {window}-day window.", \
            f"No: it is {elapsed} days since delivery, past the {window}-day window."
    return question, f"No: it is {elapsed} days since delivery, past the {window}-day window.", \
        f"Yes: it is {elapsed} days since delivery, within the {window}-day window."


def warranty(rng: random.Random):
    company, months = rng.choice(COMPANIES), rng.choice([6, 12, 24])
    bought = dt.date(2023, 1, 1) + dt.timedelta(days=rng.randint(0, 500))
    age = rng.randint(1, months * 2)
    broke = bought + dt.timedelta(days=age * 30 + rng.randint(0, 20))
    question = (f"{company} gives a {months}-month warranty from purchase. I bought the device on "
                f"{bought.isoformat()} and it broke on {broke.isoformat()}. Is it covered?")
    covered = broke <= _add_months(bought, months)
    end = _add_months(bought, months).isoformat()
    if covered:
        return question, f"Yes, it is covered: the warranty runs until {end}.", \
            f"No, it is not covered: the warranty ended on {end}."
    return question, f"No, it is not covered: the warranty ended on {end}.", \
        f"Yes, it is covered: the warranty runs until {end}."


def hours(rng: random.Random):
    company, start, end = rng.choice(COMPANIES), rng.choice([7, 8, 9]), rng.choice([17, 18, 20])
    weekend = rng.random() < 0.5
    day, hour = rng.choice(DAYS), rng.randint(6, 22)
    question = (f"{company} support is open {'every day' if weekend else 'Monday to Friday'}, {start}:00 to {end}:00. "
                f"Can I reach someone on {day} at {hour}:00?")
    open_day = weekend or day not in ("Saturday", "Sunday")
    if open_day and start <= hour < end:
        return question, f"Yes, support is open then ({start}:00 to {end}:00).", \
            "No, support is closed at that time."
    why = "on weekdays only" if not open_day else f"from {start}:00 to {end}:00"
    return question, f"No, support is open {why}.", f"Yes, support is open then ({start}:00 to {end}:00)."


def vouchers(rng: random.Random):
    company, per, value = rng.choice(COMPANIES), rng.choice([100, 200, 250]), money(rng.choice([5, 10]))
    spent = rng.randint(50, 2000)
    count = spent // per
    question = (f"At {company} every $1 spent earns 1 point, and each {per} points is a {usd(value)} voucher. "
                f"I have spent ${spent}. How many vouchers do I get?")
    wrong = count + rng.choice([1, 2]) if count < 2 else count - 1
    return question, f"You get {count} voucher{'s' if count != 1 else ''} ({spent} points / {per}).", \
        f"You get {wrong} voucher{'s' if wrong != 1 else ''} ({spent} points / {per})."


TASKS = {"shipping": shipping, "late_fee": late_fee, "discount": discount, "seats": seats, "returns": returns,
         "warranty": warranty, "hours": hours, "vouchers": vouchers}


def _add_months(day: dt.date, months: int) -> dt.date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return dt.date(year, month, min(day.day, 28))


def rambling(rng: random.Random, chosen: str) -> str:
    """The chosen answer buried between an opener, hedging and a closer."""
    return " ".join([rng.choice(OPENERS), rng.choice(HEDGES), chosen[0].lower() + chosen[1:]
                     if rng.random() < 0.5 else chosen, rng.choice(HEDGES[::-1]), rng.choice(CLOSERS)])


def records(count: int, rng: random.Random, seen: set[str], first: int) -> list[dict]:
    rows, names = [], list(TASKS)
    while len(rows) < count:
        task = names[len(rows) % len(names)]
        question, chosen, wrong = TASKS[task](rng)
        if question in seen:
            continue
        seen.add(question)
        kind = KINDS[len(rows) % len(KINDS)]
        if kind == "wrong":
            rejected = wrong
        elif kind == "rambling":
            rejected = rambling(rng, chosen)
        else:
            other = rng.choice([name for name in names if name != task])
            rejected = TASKS[other](random.Random(rng.random()))[1]
        rows.append({"id": f"cp-{first + len(rows):06d}", "prompt": question, "chosen": chosen, "rejected": rejected,
                     "metadata": {"task": task, "rejected_kind": kind}})
    return rows


def write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=300, help="training records (default 300)")
    parser.add_argument("--validation", type=int, default=60, help="validation records (default 60)")
    parser.add_argument("--seed", type=int, default=16, help="random seed (default 16)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="folder to write to")
    args = parser.parse_args(argv)
    rng, seen = random.Random(args.seed), set()
    args.out.mkdir(parents=True, exist_ok=True)
    write(args.out / "concise_preferences.jsonl", records(args.train, rng, seen, 1))
    write(args.out / "concise_preferences_validation.jsonl", records(args.validation, rng, seen, args.train + 1))


if __name__ == "__main__":
    main()
