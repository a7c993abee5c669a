import pytest

from asrbench import text


def test_simplified_becomes_taiwan_traditional_with_taiwan_phrases():
    assert text.to_traditional("软件和鼠标") == "軟體和滑鼠"


@pytest.mark.parametrize("spoken, written", [
    ("零九零零零七三三三一", "0900073331"),          # the bundled sample: leading zero kept
    ("電話是零九零零零七三三三一", "電話是0900073331"),
    ("一百二十三", "123"),                         # quantities still read as numbers
    ("兩千零五年", "2005年"),
    ("幺二三", "123"),
])
def test_numerals_become_digits_keeping_leading_zeros(spoken, written):
    assert text.inverse_normalize(spoken) == written


def test_asr_prefix_is_removed_before_scoring():
    assert text.strip_asr_prefix("language Chinese<asr_text>零九") == "零九"


def test_perfect_transcript_of_the_sample_scores_zero():
    scored = text.score("language Chinese<asr_text>零九零零零七三三三一。", "0900073331", "Chinese")
    assert scored["text_itn"] == "0900073331。"
    assert (scored["wer"], scored["cer"], scored["exact_match"]) == (0.0, 0.0, True)


def test_cer_ignores_spaces_and_punctuation():
    assert text.character_error_rate("你好，世界", "你 好 世界！", "Chinese") == 0.0


def test_cer_counts_one_wrong_digit_as_one_character_in_ten():
    assert text.character_error_rate("0900073331", "0900073332", "Chinese") == pytest.approx(0.1)


def test_wer_treats_each_chinese_character_and_each_digit_string_as_a_word():
    # 電 話 是 0900073331 -> the digit string is one word, so one wrong digit is one word error in four
    assert text.word_error_rate("電話是0900073331", "電話是0900073332", "Chinese") == pytest.approx(0.25)


def test_simplified_transcript_matches_traditional_reference():
    assert text.score("电话是零九零零零七三三三一", "電話是0900073331", "Chinese")["cer"] == 0.0


def test_empty_transcript_is_all_errors_not_a_crash():
    scored = text.score("", "0900073331", "Chinese")
    assert (scored["wer"], scored["cer"], scored["exact_match"]) == (1.0, 1.0, False)


def test_english_is_scored_on_words_without_case_or_punctuation():
    assert text.word_error_rate("The quick brown fox.", "the quick brown fox", "English") == 0.0
    assert text.word_error_rate("the quick brown fox", "the quick red fox", "English") == pytest.approx(0.25)
