"""Is a model easily gamed? Generated adversarial answers, how often they earn credit, and the
run-time check that flags answers looking like them.

Framework-free (no Django, no torch): the caller passes ``score(texts) -> (scores,
confidences)``, so any scorer (engine, group scorer, distilled student, a baseline) can be
checked. The generated answers are built from the item's prompt, reference answer and
high-scoring answers; the report keeps only rates, never the generated texts (they are made of
students' words).

Attacks (``ATTACKS``): the prompt copied back; the high-scoring key terms as a bare list; high-
scoring answers with their words shuffled; gibberish; answers padded to the length limit with
key terms; answers in another language wrapping the key terms; answers hidden behind or mixed
with invisible characters.
"""

from __future__ import annotations

import random
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from difflib import SequenceMatcher

# (scores, confidences) per text; None where the scorer could not score that text.
ScoreFn = Callable[[Sequence[str]], tuple[Sequence[int | None], Sequence[float | None]]]

ATTACKS = (
    "prompt_copy",
    "key_terms",
    "shuffled",
    "gibberish",
    "padded",
    "other_language",
    "invisible",
)

FLAG_PROMPT_COPY = "copies_prompt"
FLAG_KEY_TERMS = "key_term_list"
FLAG_INVISIBLE = "invisible_characters"
PROMPT_COPY_SIMILARITY = 0.8
"""difflib ratio of an answer's words to the prompt's at which it is flagged as a copy."""

STOP_WORDS = {
    "en": set(
        """a about above after again against all also am an and any are as at be because been
        before being below between both but by can could did do does doing down during each few
        for from further had has have having he her here hers him his how i if in into is it its
        itself just me more most my no nor not of off on once only or other our out over own same
        she should so some such than that the their them then there these they this those through
        to too under until up very was we were what when where which while who whom why will
        with would you your yours one two used use uses using""".split()
    ),
    "de": set(
        """aber alle allem allen aller alles als also am an ander andere anderem anderen anderer
        anderes auch auf aus bei bin bis bist da damit dann das dass dasselbe dazu dein deine dem
        den denn der des die dies diese dieselbe diesem diesen dieser dieses doch dort du durch ein
        eine einem einen einer eines er es etwas euch euer für gegen hat hatte hier hin hinter ich
        ihm ihn ihnen ihr ihre im in indem ins ist jede jedem jeden jeder jedes jene kann kein keine
        man manche mein mich mir mit muss nach nicht nichts noch nun nur ob oder ohne sehr sein
        seine sich sie sind so solche soll sondern um und uns unter viel vom von vor wann war waren
        warum was weil welche wenn werden wie wir wird wo zu zum zur über wird werden wurde""".split()
    ),
}

# Invisible characters a student can paste: format controls (zero-width space/joiners, word
# joiner, bidi marks, soft hyphen), private use, and blank "letters" (Hangul fillers, braille).
_BLANK_LETTERS = {"\u115f", "\u1160", "\u3164", "\uffa0", "\u2800", "\u180e"}
_ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060", "\u2063", "\ufeff")

# Sentences in another language around the key terms (the item's language is left out).
_FOREIGN_TEMPLATES = {
    "en": ["The answer is {terms}, because that is how it works.", "I think {terms} matter."],
    "de": [
        "Die Antwort ist {terms}, weil es so funktioniert.",
        "Ich glaube, {terms} sind wichtig.",
    ],
    "fr": ["La réponse est {terms}, parce que c'est comme ça.", "Je pense que {terms} comptent."],
    "es": ["La respuesta es {terms}, porque así funciona.", "Creo que {terms} importan."],
}
_FOREIGN_PLAIN = {
    "en": ["I do not know the answer to this question.", "The weather was nice today."],
    "de": ["Ich weiß die Antwort auf diese Frage nicht.", "Das Wetter war heute schön."],
    "fr": ["Je ne connais pas la réponse à cette question.", "Il faisait beau aujourd'hui."],
    "es": ["No sé la respuesta a esta pregunta.", "Hoy hizo buen tiempo."],
}

_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> list[str]:
    """Lower-case word tokens (invisible characters split words, as a reader would not)."""
    return [w.lower() for w in _WORD.findall(_strip_invisible(text))]


def _strip_invisible(text: str) -> str:
    # each distinct character is looked up once (an answer has a few dozen), not every one
    hidden = {ch for ch in set(text) if _invisible(ch)}
    return "".join(ch for ch in text if ch not in hidden) if hidden else text


def _invisible(ch: str) -> bool:
    return ch in _BLANK_LETTERS or unicodedata.category(ch) in ("Cf", "Co")


@dataclass(frozen=True)
class GamingItem:
    """What the attacks are built from."""

    prompt: str
    reference_answer: str
    high_scoring: Sequence[str]
    max_score: int
    language: str = "en"
    max_chars: int = 10_000


def key_terms(item: GamingItem, top: int = 12) -> list[str]:
    """The content words most answers that earn full credit use (and the reference answer),
    excluding words of the prompt and stop words; the most frequent first."""
    stop = STOP_WORDS.get(item.language, set()) | STOP_WORDS["en"]
    prompt_words = set(words(item.prompt))
    counts: Counter[str] = Counter()
    for text in [item.reference_answer, *item.high_scoring]:
        counts.update(
            {w for w in words(text) if w not in stop and len(w) > 2 and not w.isdigit()}
            - prompt_words
        )
    return [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]


# --- Generated answers ------------------------------------------------------------------------


def adversarial_answers(item: GamingItem, n: int = 20, seed: int = 0) -> dict[str, list[str]]:
    """Up to ``n`` generated answers per attack (fewer where the item offers fewer)."""
    rng = random.Random(seed)
    terms = key_terms(item) or words(item.reference_answer)[:8] or ["answer"]
    sources = [t for t in item.high_scoring if len(words(t)) >= 3] or [item.reference_answer]
    out: dict[str, list[str]] = {}

    prompt = item.prompt.strip()
    copies = [
        prompt,
        prompt.lower(),
        prompt.rstrip("?.! "),
        f"{prompt} {prompt}",
        " ".join(words(prompt)),
    ]
    while len(copies) < n:
        ws = prompt.split()
        cut = rng.randint(max(1, len(ws) // 2), len(ws))
        copies.append(" ".join(ws[:cut]))
    out["prompt_copy"] = copies[:n]

    lists = []
    for i in range(n):
        chosen = rng.sample(terms, k=min(len(terms), rng.randint(3, 8)))
        sep = [", ", " ", "\n", "; "][i % 4]
        lists.append(sep.join(chosen))
    out["key_terms"] = lists

    shuffled = []
    for i in range(n):
        ws = sources[i % len(sources)].split()
        rng.shuffle(ws)
        shuffled.append(" ".join(ws))
    out["shuffled"] = shuffled

    gibberish = []
    for _ in range(n):
        count = rng.randint(3, 30)
        gibberish.append(
            " ".join(
                "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 10)))
                for _ in range(count)
            )
        )
    out["gibberish"] = gibberish

    padded = []
    for i in range(n):
        head = sources[i % len(sources)] if i % 2 else rng.choice(["I am not sure.", "Something."])
        filler = " ".join(rng.choice(terms) for _ in range(item.max_chars // 4))
        padded.append((head + " " + filler)[: item.max_chars])
    out["padded"] = padded

    others = [lang for lang in _FOREIGN_TEMPLATES if lang != item.language]
    foreign = []
    for i in range(n):
        lang = others[i % len(others)]
        if i % 3 == 2:
            foreign.append(rng.choice(_FOREIGN_PLAIN[lang]))
        else:
            listed = ", ".join(rng.sample(terms, k=min(len(terms), 3)))
            foreign.append(rng.choice(_FOREIGN_TEMPLATES[lang]).format(terms=listed))
    out["other_language"] = foreign

    invisible = []
    for i in range(n):
        zw = _ZERO_WIDTH[i % len(_ZERO_WIDTH)]
        if i % 2:  # a high-scoring answer with an invisible character between letters
            invisible.append(zw.join(sources[i % len(sources)]))
        else:  # key terms hidden in a blank-looking answer
            invisible.append(zw * 5 + zw.join(rng.sample(terms, k=min(len(terms), 5))))
    out["invisible"] = invisible
    return out


# --- Run-time flagging ------------------------------------------------------------------------


def flag_answer(text: str, prompt: str, terms: Iterable[str], language: str = "en") -> list[str]:
    """Why ``text`` looks like a gaming attempt (empty: it does not). Routing a flagged answer to
    review is the caller's job; a flag is a reason to look, not a verdict."""
    flags = []
    if any(_invisible(ch) for ch in set(text)):
        flags.append(FLAG_INVISIBLE)
    tokens = words(text)
    prompt_tokens = words(prompt)
    if len(tokens) >= 3 and prompt_tokens:
        prompt_set = set(prompt_tokens)
        in_prompt = sum(1 for t in tokens if t in prompt_set) / len(tokens)
        if _similar(" ".join(tokens), " ".join(prompt_tokens), PROMPT_COPY_SIMILARITY) or (
            in_prompt >= 0.9 and len(tokens) >= 0.5 * len(prompt_tokens)
        ):
            flags.append(FLAG_PROMPT_COPY)
    term_set = {t.lower() for t in terms}
    if len(tokens) >= 3 and term_set:
        stop = STOP_WORDS.get(language, set()) | STOP_WORDS["en"]
        function_share = sum(1 for t in tokens if t in stop) / len(tokens)
        term_share = sum(1 for t in tokens if t in term_set) / len(tokens)
        if function_share < 0.1 and term_share >= 0.6:
            flags.append(FLAG_KEY_TERMS)
    return flags


def _similar(a: str, b: str, threshold: float) -> bool:
    """Whether difflib's ``ratio()`` of the two texts reaches ``threshold``; its cheap upper
    bounds are tried first (an answer unlike the prompt, nearly all of them, costs no matching:
    the full ratio was a millisecond of the web's CPU per submission on long answers)."""
    matcher = SequenceMatcher(None, a, b)
    return (
        matcher.real_quick_ratio() >= threshold
        and matcher.quick_ratio() >= threshold
        and matcher.ratio() >= threshold
    )


# --- The check --------------------------------------------------------------------------------


@dataclass
class AttackResult:
    """Rates are over the answers the scorer scored (``answers - errors``); None if none."""

    attack: str
    answers: int
    errors: int
    """Answers the scorer returned no score for."""
    credit_rate: float | None
    """Share of answers scored above 0."""
    full_credit_rate: float | None
    """Share scored ``max_score``."""
    mean_score_fraction: float | None
    """Mean score / max score."""
    mean_confidence: float | None
    flagged_rate: float
    """Share the run-time check flags (and so routes to review), of all generated answers."""


def attack_row(result: dict[str, object]) -> str:
    """One Markdown table row of an ``AttackResult`` (as its JSON)."""

    def pct(value: object) -> str:
        return f"{value:.0%}" if isinstance(value, (int, float)) else "-"

    mean = result.get("mean_score_fraction")
    errors = result.get("errors") or 0
    answers = f"{result['answers']}" + (f" ({errors} not scored)" if errors else "")
    return (
        f"| {result['attack']} | {answers} | {pct(result.get('credit_rate'))} "
        f"| {pct(result.get('full_credit_rate'))} "
        f"| {f'{mean:.2f}' if isinstance(mean, (int, float)) else '-'} "
        f"| {pct(result.get('flagged_rate'))} |"
    )


MARKDOWN_HEADER = (
    "| attack | answers | earn credit | full credit | mean score/max | flagged |\n"
    "|---|---:|---:|---:|---:|---:|"
)


@dataclass
class GamingReport:
    max_score: int
    results: list[AttackResult] = field(default_factory=list)

    @property
    def worst_credit_rate(self) -> float:
        return max((r.credit_rate or 0.0 for r in self.results), default=0.0)

    def to_json(self) -> dict[str, object]:
        return {
            "max_score": self.max_score,
            "worst_credit_rate": self.worst_credit_rate,
            "attacks": [asdict(r) for r in self.results],
        }

    def markdown(self) -> str:
        return "\n".join([MARKDOWN_HEADER, *(attack_row(asdict(r)) for r in self.results)])


def gaming_check(item: GamingItem, score: ScoreFn, n: int = 20, seed: int = 0) -> GamingReport:
    """Score every attack's generated answers once (one ``score`` call) and report the rates."""
    sets = adversarial_answers(item, n=n, seed=seed)
    terms = key_terms(item)
    order = [(attack, text) for attack in ATTACKS for text in sets[attack]]
    scores, confidences = score([text for _, text in order])
    if len(scores) != len(order) or len(confidences) != len(order):
        raise ValueError("score() must return one score and one confidence per text")
    report = GamingReport(max_score=item.max_score)
    top = max(item.max_score, 1)
    for attack in ATTACKS:
        idx = [i for i, (a, _) in enumerate(order) if a == attack]
        if not idx:
            continue
        got = [int(s) for s in (scores[i] for i in idx) if s is not None]
        sure = [float(c) for c in (confidences[i] for i in idx) if c is not None]
        flagged = [bool(flag_answer(order[i][1], item.prompt, terms, item.language)) for i in idx]
        n_scored = len(got)
        report.results.append(
            AttackResult(
                attack=attack,
                answers=len(idx),
                errors=len(idx) - n_scored,
                credit_rate=sum(1 for s in got if s > 0) / n_scored if n_scored else None,
                full_credit_rate=(
                    sum(1 for s in got if s >= item.max_score) / n_scored if n_scored else None
                ),
                mean_score_fraction=sum(got) / (n_scored * top) if n_scored else None,
                mean_confidence=sum(sure) / len(sure) if sure else None,
                flagged_rate=sum(flagged) / len(idx),
            )
        )
    return report
