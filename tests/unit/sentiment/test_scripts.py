"""Script variants: base language from letters and common words, Cyrillic Uzbek to Latin, folding to Latin."""

from __future__ import annotations

import pytest

from sentiment.scripts import (
    ScriptReading,
    embedding_text,
    fold_to_latin,
    marker_scores,
    read_script,
    refine_language,
    uzbek_cyrillic_to_latin,
)


def test_uzbek_cyrillic_to_the_latin_orthography() -> None:
    assert uzbek_cyrillic_to_latin("Ўзбекистон") == "O'zbekiston"
    assert uzbek_cyrillic_to_latin("қўнғироқ") == "qo'ng'iroq"
    assert uzbek_cyrillic_to_latin("Ҳамма нарса яхши") == "Hamma narsa yaxshi"
    # е is ye at the start of a word and after a vowel, e elsewhere
    assert uzbek_cyrillic_to_latin("етказиб берди") == "yetkazib berdi"


def test_only_cyrillic_uzbek_is_converted_before_embedding() -> None:
    assert embedding_text("Буюртма эртасигаёқ келди, раҳмат!") == "Buyurtma ertasigayoq keldi, rahmat!"
    for text in ("Заказ пришёл вовремя", "Тапсырыс келесі күні келді", "Buyurtma keldi", "შეკვეთა მოვიდა"):
        assert embedding_text(text) == text


def test_fold_to_latin_reads_every_script_alike() -> None:
    assert fold_to_latin("Sipariş Çok") == "siparis cok"
    assert fold_to_latin("Əla, həftə") == "ela, hefte"
    assert fold_to_latin("მადლობა") == "madloba"
    assert fold_to_latin("Բարև") == "barev"
    assert fold_to_latin("спасибо") == "spasibo"


@pytest.mark.parametrize(
    ("text", "language", "script", "certain"),
    [
        ("Буюртма ҳали ҳам келмади, жуда ёмон", "uz", "cyrillic", True),
        ("Тапсырыс әлі келген жоқ", "kk", "native", True),
        ("Заказ әлі келген жоқ, уже неделю жду", "kk", "code_switch", True),
        ("Pulumu hələ qaytarmayıblar, уже месяц прошёл", "az", "code_switch", True),
        ("Zakaz zhdu uzhe nedelyu, a kurier ne otvechaet", "ru", "translit", False),
        ("gamarjobat, dzalian kargi iyo, madloba", "ka", "translit", False),
        ("barev dzez, shat lav er, shnorhakalutyun", "hy", "translit", False),
        ("rahmet, ote jaqsy, tapsyrys keldi", "kk", "latin", False),
        ("Siparisim hala gelmedi, cok kotu", "tr", "no_diacritics", False),
        ("Sifarisim hele gelmeyib, cox pis", "az", "no_diacritics", False),
        ("The parcel arrived on time", None, "native", False),
    ],
)
def test_read_script(text: str, language: str | None, script: str, certain: bool) -> None:
    reading = read_script(text)
    assert (reading.language, reading.script, reading.certain) == (language, script, certain), marker_scores(text)


def test_refine_language_names_the_base_language_or_says_it_is_unsure() -> None:
    # CLD3's usual guess for Cyrillic Uzbek is Tajik: a letter only Uzbek uses settles it.
    assert refine_language("Буюртма ҳали ҳам келмади, жуда ёмон", "tg", 0.9, True) == ("uz", True)
    # Belarusian has ў too, but not қ, ғ or ҳ, and it has і.
    assert read_script("Дзякуй, усё прыйшло вельмі хутка і добра").language is None
    # Only the letters Kazakh and Uzbek share: the common words decide, without certainty.
    assert read_script("Жуда қиммат, нархи ёмон") == ScriptReading("uz", "cyrillic", False)
    # Translit: the base language from common words, marked unreliable.
    assert refine_language("gamarjobat, dzalian kargi iyo, madloba", "sw", 0.6, False) == ("ka", False)
    assert refine_language("Zakaz zhdu uzhe nedelyu, a kurier ne otvechaet", "hr", 0.95, True) == ("ru", False)
    # CLD3's romanised-Russian code names the base language.
    assert refine_language("Vchera kupil novyi telefon", "ru-Latn", 0.9, True) == ("ru", True)
    # Tajik without a letter only Tajik uses: Uzbek, unsure.
    assert refine_language("Арзон ва тез олиб келишди", "tg", 0.98, True) == ("uz", False)
    assert refine_language("Ман ба мағоза рафтам ва ҷомаи нав харидам", "tg", 0.98, True) == ("tg", True)
    # A language the service does not serve, and one common word of ours: ours, unsure.
    assert refine_language("gushin maghaziashi telefoni vikide", "sw", 0.8, True) == ("ka", False)
    # A confident CLD3 guess in a Latin-script language stands when the words say nothing else.
    assert refine_language("The parcel arrived on time", "en", 0.99, True) == ("en", True)
    assert refine_language("Le colis est arrivé", "fr", 0.99, True) == ("fr", True)
