"""Countries, languages, names and the short non-English phrase banks of the synthetic world.

Phrase banks are deliberately short and code-mixed ("Hoy tocó long run"): real creators outside the English-speaking
world mix English topic words and hashtags into their own language.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Country:
    """A country creators and followers come from."""

    code: str  # ISO 3166-1 alpha-2
    name: str
    weight: float  # relative share of accounts
    language: str  # ISO 639-1 main language
    cities: tuple[str, ...]


COUNTRIES: tuple[Country, ...] = (
    Country(
        "US", "the United States", 0.27, "en", ("New York", "Austin", "LA", "Chicago", "Denver", "Seattle", "Miami")
    ),
    Country("GB", "the UK", 0.08, "en", ("London", "Manchester", "Bristol", "Leeds", "Glasgow")),
    Country("CA", "Canada", 0.04, "en", ("Toronto", "Vancouver", "Calgary")),
    Country("AU", "Australia", 0.03, "en", ("Sydney", "Melbourne", "Brisbane")),
    Country("IE", "Ireland", 0.01, "en", ("Dublin", "Cork")),
    Country("IN", "India", 0.05, "en", ("Mumbai", "Bengaluru", "Delhi", "Pune")),
    Country("PH", "the Philippines", 0.02, "en", ("Manila", "Cebu")),
    Country("NG", "Nigeria", 0.01, "en", ("Lagos", "Abuja")),
    Country("BR", "Brazil", 0.08, "pt", ("São Paulo", "Rio", "Belo Horizonte", "Curitiba")),
    Country("PT", "Portugal", 0.02, "pt", ("Lisboa", "Porto")),
    Country("MX", "Mexico", 0.05, "es", ("CDMX", "Guadalajara", "Monterrey")),
    Country("ES", "Spain", 0.05, "es", ("Madrid", "Barcelona", "Valencia", "Sevilla")),
    Country("AR", "Argentina", 0.03, "es", ("Buenos Aires", "Córdoba")),
    Country("CO", "Colombia", 0.02, "es", ("Bogotá", "Medellín")),
    Country("DE", "Germany", 0.06, "de", ("Berlin", "München", "Hamburg", "Köln")),
    Country("AT", "Austria", 0.01, "de", ("Wien", "Graz")),
    Country("FR", "France", 0.05, "fr", ("Paris", "Lyon", "Marseille", "Bordeaux")),
    Country("IT", "Italy", 0.04, "it", ("Milano", "Roma", "Torino", "Bologna")),
    Country("ID", "Indonesia", 0.04, "id", ("Jakarta", "Bandung", "Bali", "Surabaya")),
    Country("NL", "the Netherlands", 0.02, "nl", ("Amsterdam", "Utrecht", "Rotterdam")),
)
COUNTRY_CODES: tuple[str, ...] = tuple(c.code for c in COUNTRIES)
COUNTRY_WEIGHTS = np.array([c.weight for c in COUNTRIES], dtype=np.float64)
COUNTRY_WEIGHTS /= COUNTRY_WEIGHTS.sum()
N_COUNTRIES = len(COUNTRIES)

# Word lists stay compact.
# fmt: off
FIRST_NAMES: dict[str, tuple[str, ...]] = {
    "en": ("emma", "olivia", "ava", "mia", "chloe", "sarah", "jess", "kate", "liam", "noah", "jake", "ryan", "tom",
           "sam", "alex", "maya", "priya", "arjun", "grace", "ben"),
    "es": ("lucia", "sofia", "valentina", "camila", "paula", "mateo", "diego", "javi", "pablo", "carlos", "ana",
           "marta", "alejandro", "sergio"),
    "pt": ("beatriz", "mariana", "julia", "larissa", "gabriela", "joao", "pedro", "lucas", "rafael", "thiago",
           "ines", "rita", "tiago"),
    "de": ("lena", "hannah", "lea", "marie", "anna", "jonas", "lukas", "felix", "max", "paul", "sophie", "nina"),
    "fr": ("chloe", "camille", "manon", "lea", "ines", "louis", "hugo", "jules", "theo", "lucas", "margaux", "clara"),
    "it": ("giulia", "chiara", "martina", "sara", "francesca", "luca", "marco", "matteo", "andrea", "davide",
           "elena", "giorgia"),
    "id": ("putri", "ayu", "dewi", "sari", "rina", "budi", "agus", "dimas", "rizky", "fajar", "nadia", "intan"),
    "nl": ("sanne", "lotte", "fleur", "eva", "daan", "bram", "sem", "thijs", "anouk", "lars"),
}

# Short caption phrase banks per language. {n} is a topic noun (often English), {e} an emoji, {city} a city.
CAPTIONS: dict[str, tuple[str, ...]] = {
    "es": ("Nuevo día, nuevo {n} {e}", "¿Quién más ama el {n}? {e}", "Hoy tocó {n} y me encantó {e}",
           "Mi {n} favorito del mes {e}", "Buenos días desde {city} ☀️", "No puedo parar de pensar en este {n} 😍",
           "Guarda este post para tu próximo {n} 📌", "¡Fin de semana de {n}! {e}", "Pequeños logros: {n} ✅"),
    "pt": ("Bom dia! Hoje tem {n} {e}", "Quem mais ama {n}? {e}", "Meu {n} favorito do mês {e}",
           "Direto de {city} com muito amor ❤️", "Salva esse post pro seu próximo {n} 📌", "Fim de semana de {n} {e}",
           "Não consigo parar de pensar nesse {n} 😍", "Hoje foi dia de {n}, e vocês?"),
    "de": ("Heute gibt's {n} {e}", "Wer liebt auch {n}? {e}", "Mein liebstes {n} diesen Monat {e}",
           "Grüße aus {city} ☀️", "Speichern für dein nächstes {n} 📌", "Wochenende = {n} {e}", "Endlich wieder {n}!",
           "Kleiner Erfolg heute: {n} ✅"),
    "fr": ("Petit {n} du jour {e}", "Qui d'autre adore le {n} ? {e}", "Mon {n} préféré du mois {e}",
           "Bonjour de {city} ☀️", "À enregistrer pour ton prochain {n} 📌", "Week-end {n} {e}", "Enfin du {n} !",
           "On en parle de ce {n} ? 😍"),
    "it": ("Oggi {n} e relax {e}", "Chi altro ama il {n}? {e}", "Il mio {n} preferito del mese {e}",
           "Buongiorno da {city} ☀️", "Salva questo post per il prossimo {n} 📌", "Weekend di {n} {e}",
           "Finalmente {n}!", "Piccole vittorie: {n} ✅"),
    "id": ("Hari ini {n} dulu {e}", "Siapa lagi yang suka {n}? {e}", "{n} favorit bulan ini {e}",
           "Salam dari {city} ☀️", "Simpan post ini buat {n} berikutnya 📌", "Akhir pekan = {n} {e}",
           "Akhirnya {n} lagi!", "Semangat pagi, {n} dulu ya {e}"),
}
# Longer caption lines per language: the story sentences of long local captions.
STORY_LINES: dict[str, tuple[str, ...]] = {
    "es": ("Gracias por todo el cariño en el último post {e}", "Esta semana fue intensa, pero valió la pena.",
           "Llevo {num} meses con esto y no me arrepiento de nada.", "Cuéntenme en los comentarios qué quieren ver 👇",
           "Un día más en {city}, con mucho {n} y poco descanso.", "La constancia es lo más difícil, no el {n}."),
    "pt": ("Obrigada por todo o carinho no último post {e}", "Essa semana foi corrida, mas valeu a pena.",
           "Já são {num} meses nessa jornada e não me arrependo.", "Me contem nos comentários o que querem ver 👇",
           "Mais um dia em {city}, com muito {n} e pouco descanso.", "Constância é a parte mais difícil, não o {n}."),
    "de": ("Danke für eure lieben Nachrichten zum letzten Post {e}",
           "Die Woche war anstrengend, aber es hat sich gelohnt.",
           "Seit {num} Monaten dabei und ich bereue nichts.", "Schreibt mir in die Kommentare, was ihr sehen wollt 👇",
           "Noch ein Tag in {city}, viel {n} und wenig Schlaf.", "Dranbleiben ist das Schwerste, nicht das {n}."),
    "fr": ("Merci pour tout l'amour sur le dernier post {e}", "Semaine intense, mais ça valait le coup.",
           "Ça fait {num} mois que j'ai commencé et je ne regrette rien.",
           "Dites-moi en commentaire ce que vous voulez voir 👇",
           "Encore une journée à {city}, beaucoup de {n} et peu de repos.",
           "Le plus dur c'est la régularité, pas le {n}."),
    "it": ("Grazie per tutto l'affetto sull'ultimo post {e}", "Settimana intensa, ma ne è valsa la pena.",
           "Sono {num} mesi che ho iniziato e non mi pento di niente.", "Scrivetemi nei commenti cosa volete vedere 👇",
           "Un altro giorno a {city}, tanto {n} e poco riposo.", "La costanza è la parte più difficile, non il {n}."),
    "id": ("Makasih banyak buat semua dukungan di post kemarin {e}", "Minggu ini capek banget, tapi worth it.",
           "Udah {num} bulan jalan dan nggak nyesel sama sekali.", "Kasih tau di komen mau lihat apa lagi ya 👇",
           "Satu hari lagi di {city}, banyak {n} dan kurang tidur.", "Yang paling susah itu konsisten, bukan {n}-nya."),
}
# Country and language hashtags that real local creators add to their blocks.
LOCAL_HASHTAGS: dict[str, tuple[str, ...]] = {
    "en": ("usa", "uk", "london", "nyc", "weekend"),
    "es": ("españa", "mexico", "vidasana", "motivación", "felizdomingo", "buenosdias"),
    "pt": ("brasil", "portugal", "vidasaudavel", "bomdia", "amor", "fimdesemana"),
    "de": ("deutschland", "österreich", "liebe", "wochenende", "motivation", "glücklich"),
    "fr": ("france", "paris", "bonjour", "weekend", "bonheur", "vivrelavie"),
    "it": ("italia", "milano", "amore", "buongiorno", "weekend", "felicità"),
    "id": ("indonesia", "jakarta", "semangat", "bahagia", "akhirpekan", "infobali"),
    "nl": ("nederland", "amsterdam", "weekend", "genieten", "zomer"),
}
CREATOR_BIOS: dict[str, tuple[str, ...]] = {
    "es": ("Amante del {n} {e}", "Comparto {n} y buena vida", "Vida sana, {n} y café ☕", "Colaboraciones por DM 📩"),
    "pt": ("Apaixonada por {n} {e}", "Dicas de {n} todo dia", "Parcerias via DM 📩", "Vida leve e muito {n}"),
    "de": ("{n} & gute Laune {e}", "Tipps rund um {n}", "Kooperationen per DM 📩", "Alltag, Kaffee und {n}"),
    "fr": ("Passionnée de {n} {e}", "Astuces {n} & lifestyle", "Collabs en DM 📩", "Café, {n} et bonne humeur"),
    "it": ("Amante del {n} {e}", "Consigli di {n} ogni giorno", "Collaborazioni in DM 📩", "Caffè, {n} e sorrisi"),
    "id": ("Pecinta {n} {e}", "Tips {n} setiap hari", "Kerja sama via DM 📩", "Kopi, {n} dan cerita"),
}
FOLLOWER_BITS: dict[str, tuple[str, ...]] = {
    "es": ("Amo el {n}", "Vivir y disfrutar ✨", "Mamá, café y {n}", "Estudiante", "Hija de Dios 🙏"),
    "pt": ("Amo {n}", "Vivendo um dia de cada vez ✨", "Mãe, café e {n}", "Estudante", "Deus é fiel 🙏"),
    "de": ("Liebe {n}", "Kaffee zuerst ☕", "Mama, Kaffee & {n}", "Studentin", "Einfach leben"),
    "fr": ("J'adore le {n}", "Café d'abord ☕", "Maman, café & {n}", "Étudiante", "La vie est belle"),
    "it": ("Amo il {n}", "Prima il caffè ☕", "Mamma, caffè e {n}", "Studentessa", "Vivi e lascia vivere"),
    "id": ("Suka {n}", "Kopi dulu ☕", "Ibu, kopi & {n}", "Mahasiswa", "Bismillah ✨"),
}

# Everyday identity bits real people put in their bios, unrelated to any topic.
LIFE_BITS: tuple[str, ...] = (
    "nurse 👩‍⚕️", "teacher", "student", "she/her", "he/him", "engineer", "living my best life", "just here to lurk",
    "wife & mama", "dad. husband. bbq.", "coffee & sunsets ☀️", "dog person", "introvert", "nursing student",
    "law student", "retired and loving it", "night owl 🌙", "Jesus ❤️", "small business owner", "artist",
    "married to my best friend", "foodie", "beach lover 🌊", "music lover", "aries ♈", "22", "IG only", "be kind",
)

# Bot and spam profiles: some are obvious, some only subtly off.
BOT_BIOS: tuple[str, ...] = (
    "follow me back 💯", "💸 crypto signals 💸 dm", "f4f l4l", "promo? dm 📩", "get 10k followers ➡️ link",
    "🔥🔥🔥", "make $500/day from home 💰", "dm for collab 💌", "🔞 check my link", "forex trader 📈 dm",
    "best deals 4u", "new account pls follow", "💎 NFT drops 💎", "giveaway winner ✔️", "link below 👇👇",
    "welcome to my page", "free followers here", "sugar daddy? dm", "love life ❤️❤️", "business inquiries dm",
)
BOT_HANDLE_WORDS: tuple[str, ...] = (
    "user", "promo", "deals", "official", "real", "the", "xx", "shop", "best", "crypto",
)
# fmt: on
