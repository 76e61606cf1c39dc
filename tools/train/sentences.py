"""Varied English sentences for the synthetic corpus: templates with word lists, spelled-out numbers, dates, money,
names, questions, commands, everyday phrases, and random sequences of frequent words (wordfreq).

Every sentence is upper case A–Z, apostrophe and single spaces: the base-960h character vocabulary.
"""
import math
import random
import re

FIRST_NAMES = """james mary john patricia robert jennifer michael linda william elizabeth david barbara richard susan joseph
jessica thomas sarah charles karen christopher nancy daniel lisa matthew betty anthony margaret mark sandra donald ashley
steven kimberly paul emily andrew donna joshua michelle kenneth dorothy kevin carol brian amanda george melissa timothy
deborah ronald stephanie edward rebecca jason sharon jeffrey laura ryan cynthia jacob kathleen gary amy nicholas angela
eric shirley jonathan anna stephen brenda larry pamela justin emma scott nicole brandon helen benjamin samantha samuel
katherine gregory christine alexander debra frank rachel patrick carolyn raymond janet jack catherine dennis maria jerry
heather tyler diane aaron ruth jose julie adam olivia henry joyce nathan virginia douglas victoria zachary kelly peter
lauren kyle christina ethan joan walter evelyn noah judith jeremy megan christian andrea keith cheryl roger hannah terry
jacqueline gerald martha harold gloria sean teresa austin ann carl sara arthur madison lawrence frances dylan kathryn
jesse janice jordan jean bryan abigail billy alice joe julia bruce judy gabriel sophia logan grace albert denise willie
amber alan doris juan marilyn wayne danielle elijah beverly randy isabella roy theresa vincent diana ralph natalie eugene
brittany russell charlotte bobby marie mason kayla philip alexis louis lori oscar quentin yusuf zoe xavier ivan omar
priya chen wei hiroshi yuki fatima ahmed olga sven ingrid pierre amelie lucas mateo sofia diego carmen""".split()

LAST_NAMES = """smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez lopez gonzalez wilson
anderson thomas taylor moore jackson martin lee perez thompson white harris sanchez clark ramirez lewis robinson walker
young allen king wright scott torres nguyen hill flores green adams nelson baker hall rivera campbell mitchell carter
roberts gomez phillips evans turner diaz parker cruz edwards collins reyes stewart morris morales murphy cook rogers
gutierrez ortiz morgan cooper peterson bailey reed kelly howard ramos kim cox ward richardson watson brooks chavez wood
james bennett gray mendoza ruiz hughes price alvarez castillo sanders patel myers long ross foster jimenez powell""".split()

PLACES = ["london", "paris", "new york", "chicago", "boston", "seattle", "texas", "california", "tokyo", "berlin",
          "madrid", "rome", "dublin", "sydney", "toronto", "denver", "atlanta", "miami", "the airport", "the station",
          "the office", "the library", "the kitchen", "the garden", "the hospital", "the school", "the park",
          "the beach", "the market", "the bank", "the museum", "the hotel", "the restaurant", "the theater",
          "the city center", "the mountains", "the river", "the village", "the farm", "the church", "the bakery",
          "the gym", "the post office", "the pharmacy", "the garage", "the basement", "the attic", "the bedroom",
          "the living room", "the bathroom", "the harbor", "the stadium", "the university", "the factory"]

OBJECTS = """book car phone key letter bag umbrella ticket coat hat bottle cup chair table lamp window door computer
camera watch ring wallet box map pen notebook bicycle guitar piano picture mirror blanket pillow jacket shoe glove
basket bucket ladder hammer candle kettle plate spoon fork knife bowl clock radio television newspaper magazine
envelope package sandwich apple orange banana cake bread cheese coffee tea juice water soup pizza cookie""".split()

ADJECTIVES = """red blue green yellow black white old new small large heavy light quiet loud warm cold bright dark
clean dirty empty full broken shiny soft hard strange beautiful quick slow happy sad tired busy lucky careful
famous friendly expensive cheap simple difficult important useful wonderful terrible ancient modern gentle""".split()

VERBS_PAST = """found lost bought sold opened closed carried painted fixed moved washed cleaned built borrowed returned
dropped picked kept forgot remembered noticed ordered delivered signed checked wrapped hid shared packed""".split()

VERBS_BASE = """find lose buy sell open close carry paint fix move wash clean build borrow return drop pick keep forget
remember notice order deliver sign check wrap hide share pack bring take send call visit meet help""".split()

WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
MONTHS = "january february march april may june july august september october november december".split()

ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen " \
       "seventeen eighteen nineteen".split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
ORDINALS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth", "nine": "ninth",
            "twelve": "twelfth"}


def spell_number(n):
    """Cardinal number in words, 0 ≤ n < 10^9."""
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return ONES[n // 100] + " hundred" + ("" if rest == 0 else " and " + spell_number(rest))
    for value, name in ((10 ** 6, "million"), (1000, "thousand")):
        if n >= value:
            rest = n % value
            tail = "" if rest == 0 else (" and " if rest < 100 else " ") + spell_number(rest)
            return spell_number(n // value) + " " + name + tail
    raise ValueError(n)


def spell_ordinal(n):
    words = spell_number(n).split()
    last = words[-1]
    if last in ORDINALS:
        words[-1] = ORDINALS[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def spell_year(y):
    if 2000 <= y < 2010:
        return spell_number(y)
    return spell_number(y // 100) + " " + ("hundred" if y % 100 == 0 else
                                             ("oh " + ONES[y % 100] if y % 100 < 10 else spell_number(y % 100)))


def spell_time(rng):
    h = rng.randint(1, 12)
    m = rng.choice([0, 5, 10, 15, 20, 25, 30, 40, 45, 50, rng.randint(1, 59)])
    if m == 0:
        return spell_number(h) + rng.choice([" o'clock", "", " in the morning", " in the evening"])
    if m == 15 and rng.random() < 0.5:
        return "quarter past " + spell_number(h)
    if m == 30 and rng.random() < 0.5:
        return "half past " + spell_number(h)
    return spell_number(h) + " " + (("oh " + ONES[m]) if m < 10 else spell_number(m))


class SentenceGenerator:
    def __init__(self, seed, common_words):
        self.rng = random.Random(seed)
        self.words = common_words

    def name(self):
        r = self.rng
        return r.choice(FIRST_NAMES) if r.random() < 0.6 else r.choice(FIRST_NAMES) + " " + r.choice(LAST_NAMES)

    def number(self):
        r = self.rng
        return spell_number(r.choice([r.randint(0, 20), r.randint(21, 99), r.randint(100, 999),
                                      r.randint(1000, 99999), r.randint(100000, 9999999)]))

    def thing(self):
        r = self.rng
        adjective = (r.choice(ADJECTIVES) + " ") if r.random() < 0.5 else ""
        return r.choice(["the ", "a ", "my ", "your ", "her ", "his ", "their ", "this ", "that "]) + adjective + r.choice(OBJECTS)

    def templates(self):
        r, n, t, p = self.rng, self.name, self.thing, lambda: r.choice(PLACES)
        return [
            lambda: f"{n()} {r.choice(VERBS_PAST)} {t()} at {p()}",
            lambda: f"please {r.choice(VERBS_BASE)} {t()} before {r.choice(WEEKDAYS)}",
            lambda: f"did {n()} {r.choice(VERBS_BASE)} {t()} yesterday",
            lambda: f"where did you put {t()}",
            lambda: f"what time does the train to {p()} leave",
            lambda: f"the meeting starts at {spell_time(r)} on {r.choice(WEEKDAYS)}",
            lambda: f"i was born on the {spell_ordinal(r.randint(1, 31))} of {r.choice(MONTHS)} {spell_year(r.randint(1930, 2024))}",
            lambda: f"it costs {self.number()} dollars and {spell_number(r.randint(1, 99))} cents",
            lambda: f"there are {self.number()} people living in {p()}",
            lambda: f"call {n()} at {' '.join(ONES[r.randint(0, 9)] for _ in range(r.randint(4, 7)))}",
            lambda: f"turn {r.choice(['on', 'off'])} the lights in {p()}",
            lambda: f"set a timer for {spell_number(r.randint(1, 90))} minutes",
            lambda: f"how far is it from {p()} to {p()}",
            lambda: f"{n()} and {n()} went to {p()} last {r.choice(WEEKDAYS)}",
            lambda: f"can you tell me why {t()} is so {r.choice(ADJECTIVES)}",
            lambda: f"i think {t()} is {r.choice(['in', 'under', 'behind', 'near', 'on'])} {t()}",
            lambda: f"we need {spell_number(r.randint(2, 30))} {r.choice(OBJECTS)}s for the party",
            lambda: f"the temperature today is {spell_number(r.randint(0, 105))} degrees",
            lambda: f"room {spell_number(r.randint(100, 999))} is on the {spell_ordinal(r.randint(1, 40))} floor",
            lambda: f"{n()} said that {t()} was {r.choice(ADJECTIVES)}",
            lambda: f"don't forget to {r.choice(VERBS_BASE)} {t()}",
            lambda: f"who left {t()} in {p()}",
            lambda: f"i'll meet you at {p()} at {spell_time(r)}",
            lambda: f"she's been working at {p()} since {spell_year(r.randint(1950, 2024))}",
            lambda: f"they've {r.choice(VERBS_PAST)} {t()} again",
            lambda: f"thank you for {r.choice(['calling', 'waiting', 'your help', 'coming', 'the gift'])} {n()}",
            lambda: f"good {r.choice(['morning', 'afternoon', 'evening', 'night'])} {n()} how are you",
            lambda: f"the score was {spell_number(r.randint(0, 9))} to {spell_number(r.randint(0, 9))}",
            lambda: f"flight {spell_number(r.randint(10, 999))} to {p()} is delayed by {spell_number(r.randint(5, 120))} minutes",
            lambda: f"is {t()} {r.choice(ADJECTIVES)} or {r.choice(ADJECTIVES)}",
        ]

    def common(self, count):
        r = self.rng
        # Log-uniform over frequency ranks: frequent words often, the long tail still well covered.
        top = math.log(len(self.words))
        return [self.words[min(len(self.words) - 1, int(math.exp(r.uniform(0, top))) - 1)] for _ in range(count)]

    def sentences(self, count, exclude=frozenset()):
        templates = self.templates()
        seen = set(exclude)
        out = []
        while len(out) < count:
            r = self.rng
            if r.random() < 0.35:   # random frequent words: vocabulary and letter-sequence coverage
                text = " ".join(self.common(r.randint(3, 12)))
                if r.random() < 0.2:
                    text += " " + self.name()
            else:
                text = r.choice(templates)()
            text = normalize(text)
            words = text.split()
            if not (2 <= len(words) <= 22) or text in seen:
                continue
            seen.add(text)
            out.append(text)
        return out


def normalize(text):
    text = text.upper()
    text = re.sub(r"[^A-Z' ]", " ", text)
    return re.sub(r" +", " ", text).strip()


def common_words(limit=20000):
    from wordfreq import top_n_list
    words = []
    for w in top_n_list("en", limit * 2):
        if re.fullmatch(r"[a-z]+('[a-z]+)?", w) and re.search(r"[aeiouy]", w) and (len(w) > 1 or w in ("a", "i")):
            words.append(w)
        if len(words) == limit:
            break
    return words
