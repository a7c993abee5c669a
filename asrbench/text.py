"""Transcript text: zh-CN -> zh-TW, Chinese numerals -> digits, and WER/CER against a reference.

Chinese is scored as a person counts it: every CJK character is a token and so is every digit, so a phone number
costs one error per wrong digit however the model grouped, spaced or punctuated it; runs of letters stay words.
CER counts characters without spaces and punctuation.
"""

import re
import string
import unicodedata
import warnings
from functools import lru_cache

import cn2an
import jiwer

# Digits read one by one ("零九零零...") are a number string, not a quantity: cn2an would read
# 零九零零零七三三三一 as 900073331 and lose the leading zero, so such runs are turned into
# digits first, character by character. Phone numbers read aloud often say 幺 for 1 and 洞 for 0;
# OpenCC s2twp writes 幺 as 么, so both forms are digits here.
_DIGIT_BY_DIGIT = {"零": "0", "〇": "0", "洞": "0", "一": "1", "幺": "1", "么": "1", "二": "2", "兩": "2", "两": "2",
                   "三": "3", "四": "4", "五": "5", "六": "6", "七": "7", "八": "8", "九": "9"}
_UNITS = "十拾百佰千仟萬万億亿點点"
_DIGIT_CHARS = "".join(_DIGIT_BY_DIGIT)
_DIGIT_RUN = re.compile(  # two or more digit readings, single spaces between them allowed, not part of a quantity
    rf"(?<![{_UNITS}])[{_DIGIT_CHARS}](?:\s?[{_DIGIT_CHARS}])+(?![{_UNITS}])"
)
# cn2an reads simplified numerals only; OpenCC s2twp has already written 点 as 點 and 负 as 負.
_TRADITIONAL_NUMERAL_SIGNS = [
    (re.compile(rf"(?<=[{_DIGIT_CHARS}十拾百佰千仟])點(?=[{_DIGIT_CHARS}])"), "点"),
    (re.compile(rf"負(?=[{_DIGIT_CHARS}十拾百佰千仟])"), "负"),
]
_ASR_PREFIX = re.compile(r"(?:language\s+[A-Za-z]+\s*)?<asr_text>")


@lru_cache(maxsize=None)
def _converter(config: str):
    import opencc  # opencc-python-reimplemented

    return opencc.OpenCC(config)


def strip_asr_prefix(text: str) -> str:
    """Qwen3-ASR emits 'language Chinese<asr_text>' (or only '<asr_text>' when the language is set) before each
    transcript, and 'language None<asr_text>' for no speech: drop every such prefix, keep the words."""
    return _ASR_PREFIX.sub(" ", text).strip()


def to_traditional(text: str) -> str:
    """zh-CN -> zh-TW with Taiwan phrases (OpenCC s2twp)."""
    return _converter("s2twp").convert(text)


def _digits(match: re.Match) -> str:
    run = match.group()
    if not any(c in _DIGIT_BY_DIGIT and c != "洞" for c in run):
        return run  # 洞 alone is a hole (洞洞鞋), not a zero
    return "".join(_DIGIT_BY_DIGIT.get(c, c) for c in run)


def digits_read_one_by_one(text: str) -> str:
    """零九零零零七三三三一 and 洞九洞洞洞七三三三幺 -> 0900073331; leaves quantities such as 一百二十三 alone."""
    return _DIGIT_RUN.sub(_digits, text)


def inverse_normalize(text: str) -> str:
    """Chinese numerals -> Arabic digits, keeping the leading zeros of digit strings; simplified or zh-TW input."""
    text = digits_read_one_by_one(text)
    for pattern, simplified in _TRADITIONAL_NUMERAL_SIGNS:
        text = pattern.sub(simplified, text)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cn2an warns about numerals it cannot read and leaves them as they are
        try:
            return cn2an.transform(text, "cn2an")
        except (ValueError, KeyError):
            return text


class CompatibilityForms(jiwer.AbstractTransform):
    """Unicode NFKC: full-width digits and letters (０９, Ａ) are the digits and letters a reader sees."""

    def process_string(self, s: str) -> str:
        return unicodedata.normalize("NFKC", s)


# Every CJK character and every digit is a token of its own; runs of letters stay one word.
SplitCJKCharactersAndDigits = jiwer.SubstituteRegexes(
    {r"([\u3400-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]|[0-9])": r" \1 "}
)


class RemoveAllPunctuation(jiwer.AbstractTransform):
    """ASCII and CJK punctuation (，。！？、「」…) alike."""

    def process_string(self, s: str) -> str:
        return "".join(
            " " if (c in string.punctuation or unicodedata.category(c).startswith("P")) else c for c in s
        )


_COMMON = [CompatibilityForms(), jiwer.ToLowerCase(), RemoveAllPunctuation()]
CHINESE_WORDS = jiwer.Compose(
    _COMMON + [SplitCJKCharactersAndDigits, jiwer.RemoveMultipleSpaces(), jiwer.Strip(), jiwer.ReduceToListOfListOfWords()]
)
CHINESE_CHARS = jiwer.Compose(_COMMON + [jiwer.RemoveWhiteSpace(replace_by_space=False), jiwer.ReduceToListOfListOfChars()])
_ENGLISH = [jiwer.ToLowerCase(), jiwer.ExpandCommonEnglishContractions(), RemoveAllPunctuation(),
            jiwer.RemoveMultipleSpaces(), jiwer.Strip()]
ENGLISH_WORDS = jiwer.Compose(_ENGLISH + [jiwer.ReduceToListOfListOfWords()])
ENGLISH_CHARS = jiwer.Compose(_ENGLISH + [jiwer.ReduceToListOfListOfChars()])


def is_chinese(language: str) -> bool:
    return language.lower() in ("chinese", "zh", "zh-cn", "zh-tw", "cantonese", "yue", "mandarin")


def normalize_transcript(raw: str, language: str) -> dict:
    """Every stage of the text pipeline, so a record shows how the score came about."""
    text = strip_asr_prefix(raw)
    if is_chinese(language):
        traditional = to_traditional(text)
        return {"text": text, "text_zh_tw": traditional, "text_itn": inverse_normalize(traditional)}
    return {"text": text, "text_zh_tw": None, "text_itn": text}


def _empty_safe(measure, reference: str, hypothesis: str, words, chars, use_chars: bool) -> float:
    transform = chars if use_chars else words
    if not transform(hypothesis)[0]:
        return 1.0  # nothing recognised: every reference unit is an error
    return float(measure(reference, hypothesis, reference_transform=transform, hypothesis_transform=transform))


def word_error_rate(reference: str, hypothesis: str, language: str) -> float:
    """WER; for Chinese every CJK character and every digit is a word, runs of letters are words."""
    words, chars = (CHINESE_WORDS, CHINESE_CHARS) if is_chinese(language) else (ENGLISH_WORDS, ENGLISH_CHARS)
    return _empty_safe(jiwer.wer, reference, hypothesis, words, chars, use_chars=False)


def character_error_rate(reference: str, hypothesis: str, language: str) -> float:
    """CER; spaces and punctuation are not characters here."""
    words, chars = (CHINESE_WORDS, CHINESE_CHARS) if is_chinese(language) else (ENGLISH_WORDS, ENGLISH_CHARS)
    return _empty_safe(jiwer.cer, reference, hypothesis, words, chars, use_chars=True)


def score(raw_transcript: str, reference: str, language: str) -> dict:
    """Normalise a raw transcript and score it: the text fields and error rates of one iteration."""
    texts = normalize_transcript(raw_transcript, language)
    hypothesis = texts["text_itn"]
    reference_itn = normalize_transcript(reference, language)["text_itn"]
    return {
        **texts,
        "wer": word_error_rate(reference_itn, hypothesis, language),
        "cer": character_error_rate(reference_itn, hypothesis, language),
        "exact_match": CHINESE_CHARS(reference_itn) == CHINESE_CHARS(hypothesis)
        if is_chinese(language)
        else ENGLISH_WORDS(reference_itn) == ENGLISH_WORDS(hypothesis),
    }
