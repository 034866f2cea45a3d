"""Two made-up raw-text corpora as a user would bring them: cased, punctuation glued to words, contractions,
Spanish ¿¡ and accents, German capitalised nouns. English -> German-like and English -> Spanish-like, written as
``{train,valid,test}.{en,xx}`` files for ``data=parallel``."""
from __future__ import annotations

import random
from pathlib import Path

SUBJECTS = {"I": ("Ich", "Yo"), "You": ("Du", "Tú"), "Tom": ("Tom", "Tom"), "Mary": ("Maria", "María"),
            "We": ("Wir", "Nosotros"), "They": ("Sie", "Ellos"), "My sister": ("Meine Schwester", "Mi hermana"),
            "The teacher": ("Der Lehrer", "El profesor")}
VERBS = {"checked": ("prüfte", "revisó"), "opened": ("öffnete", "abrió"), "found": ("fand", "encontró"),
         "lost": ("verlor", "perdió"), "painted": ("malte", "pintó"), "sold": ("verkaufte", "vendió"),
         "forgot": ("vergaß", "olvidó"), "washed": ("wusch", "lavó"), "repaired": ("reparierte", "reparó"),
         "bought": ("kaufte", "compró"), "closed": ("schloss", "cerró"), "carried": ("trug", "llevó")}
OBJECTS = {"the date": ("das Datum", "la fecha"), "the door": ("die Tür", "la puerta"),
           "the letter": ("den Brief", "la carta"), "my keys": ("meine Schlüssel", "mis llaves"),
           "the car": ("das Auto", "el coche"), "the window": ("das Fenster", "la ventana"),
           "her book": ("ihr Buch", "su libro"), "the report": ("den Bericht", "el informe"),
           "the bicycle": ("das Fahrrad", "la bicicleta"), "his umbrella": ("seinen Schirm", "su paraguas"),
           "the garden": ("den Garten", "el jardín"), "the kitchen": ("die Küche", "la cocina"),
           "the suitcase": ("den Koffer", "la maleta"), "our tickets": ("unsere Karten", "nuestros billetes"),
           "the bottle": ("die Flasche", "la botella"), "the newspaper": ("die Zeitung", "el periódico"),
           "the mirror": ("den Spiegel", "el espejo"), "the painting": ("das Gemälde", "el cuadro"),
           "the envelope": ("den Umschlag", "el sobre"), "the ladder": ("die Leiter", "la escalera"),
           "the basket": ("den Korb", "la cesta"), "the blanket": ("die Decke", "la manta"),
           "the lamp": ("die Lampe", "la lámpara"), "the wallet": ("die Geldbörse", "la cartera")}
TIMES = {"": ("", ""), "Yesterday, ": ("Gestern ", "Ayer, "), "Of course, ": ("Natürlich ", "Por supuesto, ")}
LANGUAGES = {"de": 0, "es": 1}


def sentence_pair(rng: random.Random, language: str) -> tuple[str, str]:
    """One English sentence and its German- or Spanish-like translation (word order and punctuation of each)."""
    k = LANGUAGES[language]
    subject, verb, obj, time = (rng.choice(list(table)) for table in (SUBJECTS, VERBS, OBJECTS, TIMES))
    s, v, o, t = SUBJECTS[subject][k], VERBS[verb][k], OBJECTS[obj][k], TIMES[time][k]
    form = rng.choice(["statement", "question", "exclaim", "negation", "price"])
    if form == "price":  # numbers: the long tail of a real corpus
        euros, cents = rng.randint(2, 999), rng.choice(["", ",50", ",99"])
        return (f"{subject} paid {euros}{cents.replace(',', '.')} euros for {obj}.",
                f"{s} zahlte {euros}{cents} Euro für {o}." if k == 0 else f"{s} pagó {euros}{cents} euros por {o}.")
    if form == "question":
        return f"Who {verb} {obj}?", (f"Wer {v} {o}?" if k == 0 else f"¿Quién {v} {o}?")
    if form == "exclaim":
        return f"{subject} {verb} {obj}!", (f"{s} {v} {o}!" if k == 0 else f"¡{s} {v} {o}!")
    if form == "negation":
        return (f"{subject} didn't say that {obj} was wrong.",
                f"{s} sagte nicht, dass {o} falsch war." if k == 0 else f"{s} no dijo que {o} estaba mal.")
    english = f"{time}{subject[0].lower() + subject[1:] if time and subject not in ('I', 'Tom', 'Mary') else subject} {verb} {obj}."
    if k == 0:  # German: verb second after a fronted adverb
        target = f"{t}{v} {s[0].lower() + s[1:] if t and s not in ('Tom', 'Maria') else s} {o}." if t else f"{s} {v} {o}."
    else:
        target = f"{t}{s[0].lower() + s[1:] if t and s not in ('Tom', 'María') else s} {v} {o}."
    return english, target


def write_raw_corpus(root: Path, language: str, counts: tuple[int, int, int] = (300, 40, 40), seed: int = 0) -> Path:
    """``{train,valid,test}.{en,<language>}`` under ``root``; returns ``root``."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, count in zip(("train", "valid", "test"), counts):
        pairs = [sentence_pair(rng, language) for _ in range(count)]
        for side, suffix in enumerate(("en", language)):
            (root / f"{split}.{suffix}").write_text("\n".join(pair[side] for pair in pairs) + "\n", encoding="utf-8")
    return root
