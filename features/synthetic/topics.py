"""Interest topics of the synthetic world and the vocabulary each one is written with.

Related topics share words on purpose (running, cycling and home fitness all say "workout" and "training plan";
vegan cooking and baking both say "oat milk" and "recipe"), and the generic lifestyle filler appears under every
topic, so no single keyword identifies a topic. Every brand-like word here is invented.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import numpy.typing as npt


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split("|") if part.strip())


@dataclass(frozen=True)
class Topic:
    """One interest topic and the words creators, followers and brands use for it."""

    id: int
    name: str  # stable slug, e.g. "vegan_cooking"
    label: str  # how people say it, e.g. "vegan cooking"
    nouns: tuple[str, ...]
    verbs: tuple[str, ...]  # gerunds: "running", "meal prepping"
    hashtags: tuple[str, ...]  # without '#'
    emojis: tuple[str, ...]
    gear: tuple[str, ...]  # product-ish words, some invented brand names
    roles: tuple[str, ...]  # what a creator calls themself
    audiences: tuple[str, ...]  # paraphrased target audiences, for segment descriptions
    fan_bits: tuple[str, ...]  # what a fan writes in their own bio
    products: tuple[str, ...]  # what a brand in this space sells
    stems: tuple[str, ...]  # brand-name stems
    related: tuple[str, ...]  # names of related topics
    female_share: float  # share of women among interested followers
    age_mean: float  # mean age band index (0 = 13-17 … 6 = 65+)

    @property
    def keywords(self) -> tuple[str, ...]:
        """The words most typical of the topic (evaluation and docs)."""
        return self.nouns[:8] + self.hashtags[:5]


def _topic(
    name: str,
    label: str,
    *,
    nouns: str,
    verbs: str,
    hashtags: str,
    emojis: str,
    gear: str,
    roles: str,
    audiences: str,
    fans: str,
    products: str,
    stems: str,
    related: str,
    female: float,
    age: float,
) -> Topic:
    return Topic(
        id=-1,  # assigned from the position in _SPECS
        name=name,
        label=label,
        nouns=_split(nouns),
        verbs=_split(verbs),
        hashtags=_split(hashtags),
        emojis=_split(emojis),
        gear=_split(gear),
        roles=_split(roles),
        audiences=_split(audiences),
        fan_bits=_split(fans),
        products=_split(products),
        stems=_split(stems),
        related=_split(related),
        female_share=female,
        age_mean=age,
    )


# One compact block per topic reads better than one item per line.
# fmt: off
_SPECS: tuple[Topic, ...] = (
    _topic(
        "running", "running",
        nouns="long run|tempo run|race day|half marathon|5k|10k|marathon|trail shoes|running shoes|splits|easy pace|"
        "recovery run|interval session|finish line|training plan|cardio|workout|new PB",
        verbs="running|training|pacing|stretching|racing|logging miles",
        hashtags="running|runnersofinstagram|marathontraining|runner|halfmarathon|runningcommunity|trainingday|"
        "fitness|cardio|run",
        emojis="🏃‍♀️|🏃|👟|⏱️|🏅",
        gear="Stridewell trainers|carbon plate shoes|Pacefield watch|energy gels|foam roller",
        roles="run coach|marathoner|ultra runner|running nerd|5am runner",
        audiences="people training for their first half marathon|runners who log miles before work|"
        "weekend joggers trying to get faster|anyone chasing a new 5k personal best|"
        "beginners who want to start running without getting injured",
        fans="marathon in training|5k → 10k → half|chasing PBs|runner 🏃‍♀️|sub-2 half someday|parkrun regular",
        products="lightweight running shoes|hydration vests|recovery gels and chews|GPS sports watches",
        stems="Stride|Pace|Run",
        related="cycling|home_fitness|hiking|yoga",
        female=0.5, age=2.3,
    ),
    _topic(
        "cycling", "cycling",
        nouns="gravel ride|road bike|bike commute|climb|group ride|power meter|cadence|training plan|cardio|workout|"
        "century ride|saddle|helmet|watts|indoor trainer|long ride",
        verbs="riding|climbing|commuting|spinning|training",
        hashtags="cycling|bikelife|roadbike|gravelbike|cyclinglife|bikecommute|cyclist|fitness|outsideisfree",
        emojis="🚴|🚲|⛰️|💨",
        gear="Velocrest frame|clipless pedals|bib shorts|Spokewise lights|chain lube",
        roles="gravel rider|bike commuter|cycling coach|weekend roadie",
        audiences="commuters who bike to work in the city|gravel riders who love long weekend routes|"
        "people getting into indoor cycling at home|amateur racers chasing more watts",
        fans="🚲 commuter|gravel > road|weekend rides|cyclist & coffee snob|bike to work",
        products="commuter bikes and e-bikes|cycling apparel|bike lights and locks|smart indoor trainers",
        stems="Velo|Spoke|Cadence",
        related="running|hiking|home_fitness|budget_travel",
        female=0.3, age=2.8,
    ),
    _topic(
        "home_fitness", "home fitness",
        nouns="home workout|HIIT|dumbbells|resistance bands|kettlebell|core workout|full body workout|rest day|"
        "cardio|workout|training plan|protein shake|glutes|mobility|pull-up bar",
        verbs="lifting|sweating|training|squatting|stretching",
        hashtags="homeworkout|fitness|hiit|workoutathome|fitnessmotivation|gymlife|fitfam|strengthtraining|cardio",
        emojis="💪|🏋️‍♀️|🔥|😅",
        gear="FlexForm dumbbells|adjustable dumbbells|Coreline bands|yoga mat|protein powder",
        roles="personal trainer|fitness coach|home gym enthusiast|certified PT",
        audiences="busy people who can only work out at home for 20 minutes|"
        "new moms rebuilding strength after pregnancy|people who want to get strong without a gym membership|"
        "fitness beginners who need simple routines",
        fans="gym rat 💪|fitness journey|lifting heavy things|home workouts only|leg day survivor",
        products="home gym equipment|protein powders|resistance band kits|workout apparel",
        stems="Flex|Core|Lift",
        related="running|yoga|cycling",
        female=0.6, age=2.1,
    ),
    _topic(
        "yoga", "yoga and wellness",
        nouns="yoga flow|meditation|breathwork|morning routine|self care|journaling|mindfulness|vinyasa|yoga mat|"
        "stretching|sleep routine|wellness|herbal tea|mobility",
        verbs="breathing|meditating|stretching|flowing|journaling|slowing down",
        hashtags="yoga|yogaeveryday|meditation|mindfulness|selfcare|wellness|yogainspiration|breathwork|healthyliving",
        emojis="🧘‍♀️|🌿|✨|🕯️|🌙",
        gear="Lotusleaf mat|cork yoga blocks|Stillwater tea|mala beads",
        roles="yoga teacher|breathwork coach|wellness writer|RYT-200",
        audiences="stressed professionals who want a calmer morning routine|people starting yoga at home|"
        "anyone trying to sleep better and slow down|women interested in holistic wellness",
        fans="yoga & tea|namaste 🙏|slow living|mindful mama|in my wellness era",
        products="yoga mats and props|meditation apps|herbal teas|sleep and wellness supplements",
        stems="Lotus|Still|Zen",
        related="home_fitness|skincare|vegan_cooking|running",
        female=0.82, age=2.6,
    ),
    _topic(
        "vegan_cooking", "vegan cooking",
        nouns="plant-based dinner|tofu|lentil curry|meal prep|oat milk|chickpeas|buddha bowl|recipe|vegan cheese|"
        "tempeh|weeknight dinner|smoothie bowl|cashew cream|protein|dinner",
        verbs="cooking|meal prepping|chopping|roasting|eating plants",
        hashtags="vegan|plantbased|veganrecipes|whatveganseat|veganfood|mealprep|healthyeating|plantbasedrecipes|"
        "foodie|recipe",
        emojis="🌱|🥑|🥦|🍲|🌿",
        gear="Greenfork spice mix|nutritional yeast|Sproutly oats|tofu press",
        roles="plant-based chef|vegan recipe developer|home cook|nutritionist",
        audiences="busy parents who want quick plant-based dinners|people cutting down on meat without giving up "
        "flavour|new vegans looking for easy recipes|home cooks who meal prep on Sundays",
        fans="plant powered 🌱|vegan since 2019|eats plants|flexitarian foodie|tofu enthusiast",
        products="plant-based meal kits|dairy-free cheeses|plant protein snacks|vegan cookbooks",
        stems="Green|Sprout|Plant",
        related="baking|gardening|zero_waste|yoga",
        female=0.72, age=2.3,
    ),
    _topic(
        "baking", "baking",
        nouns="sourdough|banana bread|cinnamon rolls|cookies|cake|oat milk|recipe|dough|croissants|pie crust|"
        "frosting|brownies|dessert|flour|dinner",
        verbs="baking|kneading|proofing|decorating|whisking",
        hashtags="baking|homebaking|sourdough|bakingfromscratch|cakedecorating|dessert|foodie|bakersofinstagram|recipe",
        emojis="🍞|🧁|🍪|🥐|🎂",
        gear="Crumbhouse flour|stand mixer|Rise & Loaf starter|bench scraper",
        roles="home baker|pastry chef|cake decorator|sourdough nerd",
        audiences="home bakers who bake every weekend|people learning sourdough from scratch|"
        "parents baking with their kids|dessert lovers who want easier recipes",
        fans="sourdough mom|will bake for compliments|carbs are life 🍞|cookie monster|banana bread era",
        products="baking mixes|kitchen stand mixers|specialty flours|bakeware",
        stems="Crumb|Loaf|Rise",
        related="vegan_cooking|coffee|parenting",
        female=0.78, age=2.5,
    ),
    _topic(
        "coffee", "coffee",
        nouns="latte|espresso|pour over|cold brew|flat white|coffee beans|grinder|oat milk|café|morning coffee|"
        "latte art|roast|matcha|barista",
        verbs="brewing|sipping|grinding|tasting|café hopping",
        hashtags="coffee|coffeetime|latteart|specialtycoffee|coffeelover|cafe|butfirstcoffee|coffeegram|morningvibes",
        emojis="☕|🤎|🥐|✨",
        gear="Darkroast & Co beans|burr grinder|Morning Ritual blend|gooseneck kettle",
        roles="home barista|coffee taster|café hopper|latte artist",
        audiences="coffee lovers who brew specialty coffee at home|remote workers who practically live in cafés|"
        "people who want café-quality lattes in their own kitchen|students who run on cold brew",
        fans="coffee first ☕|powered by caffeine|oat latte please|espresso yourself|café hopper",
        products="specialty coffee subscriptions|home espresso machines|coffee grinders|barista oat milk",
        stems="Roast|Bean|Brew",
        related="baking|books|photography",
        female=0.58, age=2.3,
    ),
    _topic(
        "skincare", "skincare",
        nouns="skincare routine|serum|sunscreen|SPF|moisturizer|retinol|acne|glow|cleanser|niacinamide|glass skin|"
        "barrier repair|self care|night routine",
        verbs="double cleansing|layering|glowing|exfoliating|testing",
        hashtags="skincare|skincareroutine|skincaretips|glowingskin|spf|kbeauty|selfcare|acnejourney|beauty",
        emojis="🧴|✨|💧|🌸|🧖‍♀️",
        gear="Dewlab serum|vitamin C serum|Barrierbalm cream|gua sha",
        roles="licensed esthetician|skincare junkie|derm nurse|beauty editor",
        audiences="women in their 20s and 30s building a simple skincare routine|people with sensitive or acne-prone "
        "skin|anyone who wants glowing skin without twelve steps|beauty fans who research ingredients",
        fans="skincare addict 🧴|SPF every day|glow getter|acne warrior|serum hoarder",
        products="serums and moisturizers|sunscreens|gentle cleansers|skincare devices",
        stems="Dew|Glow|Derm",
        related="makeup|yoga|fashion",
        female=0.86, age=1.9,
    ),
    _topic(
        "makeup", "makeup",
        nouns="makeup look|foundation|lipstick|eyeliner|eyeshadow palette|GRWM|contour|blush|brows|lashes|glam|"
        "beauty|mascara|setting spray|glow",
        verbs="blending|contouring|glamming|swatching|testing",
        hashtags="makeup|makeuptutorial|mua|grwm|beauty|makeupartist|glam|makeuplooks|eyeshadow",
        emojis="💄|💋|✨|💅",
        gear="Velvetine lip oil|lip oil|Glowbar highlighter|beauty sponge",
        roles="makeup artist|MUA|beauty creator|bridal makeup artist",
        audiences="young women who love trying new makeup looks|brides-to-be planning their wedding glam|"
        "beauty lovers who watch get-ready-with-me videos|people who want a five-minute everyday makeup routine",
        fans="beauty junkie 💄|lipstick collector|MUA in training|glam girl|lashes & lattes",
        products="lipsticks and lip oils|foundations and concealers|eyeshadow palettes|makeup brushes",
        stems="Velvet|Blush|Lux",
        related="skincare|fashion",
        female=0.9, age=1.6,
    ),
    _topic(
        "fashion", "fashion",
        nouns="outfit|OOTD|thrift haul|capsule wardrobe|streetwear|sneakers|denim|style|lookbook|vintage|dress|"
        "styling tips|accessories|trench coat",
        verbs="styling|thrifting|shopping|layering|outfit planning",
        hashtags="ootd|fashion|style|outfitinspo|streetstyle|thrifted|fashionblogger|whatiwore|styleinspo",
        emojis="👗|👟|🛍️|🕶️|✨",
        gear="Threadhouse linen set|linen set|Loom & Co tote|chunky loafers",
        roles="stylist|fashion blogger|thrift queen|personal shopper",
        audiences="young women who follow the latest trends|people building a sustainable capsule wardrobe|"
        "sneakerheads and streetwear fans|professionals who want effortless work outfits",
        fans="outfit repeater|thrift lover 🛍️|sneakerhead|fashion student|vintage everything",
        products="clothing and accessories|sneakers|sustainable basics|handbags",
        stems="Thread|Loom|Stitch",
        related="makeup|photography|skincare|zero_waste",
        female=0.74, age=1.8,
    ),
    _topic(
        "gaming", "gaming",
        nouns="stream|ranked|new build|controller|speedrun|boss fight|patch notes|headset|setup|indie game|co-op|"
        "loot|FPS|RPG|gaming chair",
        verbs="streaming|grinding|gaming|speedrunning|playing",
        hashtags="gaming|gamer|gamingcommunity|pcgaming|gamingsetup|esports|videogames|streamer|twitchstreamer",
        emojis="🎮|🕹️|👾|🔥",
        gear="Pixelforge keyboard|mechanical keyboard|Nightowl headset|RGB lights",
        roles="streamer|variety gamer|esports caster|retro gamer",
        audiences="young adults who stream and play competitive games|PC gamers upgrading their setup|"
        "casual gamers who play after work|teens who watch gaming streams",
        fans="gamer 🎮|pc master race|grinding ranked|retro games & pizza|streams sometimes",
        products="gaming headsets|mechanical keyboards|energy drinks for gamers|gaming chairs",
        stems="Pixel|Quest|Arcade",
        related="tech_gadgets|football|music",
        female=0.28, age=1.3,
    ),
    _topic(
        "tech_gadgets", "tech gadgets",
        nouns="unboxing|smartphone|laptop|earbuds|smartwatch|setup|desk setup|review|camera|battery life|charger|"
        "tablet|smart home|app",
        verbs="unboxing|reviewing|testing|upgrading|comparing",
        hashtags="tech|gadgets|unboxing|techreview|desksetup|smartphone|technology|techtok|techie",
        emojis="📱|💻|🎧|⌚|🔋",
        gear="Voltix charger|USB-C hub|Nimbus buds|power bank",
        roles="tech reviewer|gadget nerd|software engineer|tech YouTuber",
        audiences="early adopters who buy the latest gadgets|remote workers upgrading their desk setup|"
        "students looking for budget laptops|people who read reviews before every purchase",
        fans="tech nerd 💻|dev & gadget lover|early adopter|building things|keyboard collector",
        products="wireless earbuds|chargers and power banks|smart home devices|laptop accessories",
        stems="Volt|Nimbus|Byte",
        related="gaming|photography|personal_finance",
        female=0.3, age=2.2,
    ),
    _topic(
        "photography", "photography",
        nouns="golden hour|portrait|lens|film camera|photo walk|preset|editing|street photography|landscape|camera|"
        "sunset|composition|35mm|shot",
        verbs="shooting|editing|framing|exploring|scanning film",
        hashtags="photography|photooftheday|streetphotography|filmphotography|goldenhour|portrait|"
        "landscapephotography|photographer|visualsoflife",
        emojis="📸|🎞️|🌅|📷",
        gear="Lumenara lens|prime lens|Grainworks presets|camera strap",
        roles="photographer|film shooter|wedding photographer|visual storyteller",
        audiences="hobby photographers who shoot on weekends|people learning to edit their photos|"
        "film photography fans|travellers who want better photos of their trips",
        fans="amateur photographer 📷|film is not dead|shooting 35mm|photo walks & coffee",
        products="camera lenses|editing presets|camera bags|film stock",
        stems="Lumen|Frame|Grain",
        related="tech_gadgets|budget_travel|hiking|fashion",
        female=0.45, age=2.4,
    ),
    _topic(
        "parenting", "parenting",
        nouns="toddler|baby|school run|mom life|dad life|bedtime routine|family dinner|nap time|kids|playdate|"
        "lunchbox|family|screen time|weekend",
        verbs="parenting|juggling|surviving|potty training|meal planning",
        hashtags="momlife|parenting|dadlife|toddlerlife|familytime|motherhood|momsofinstagram|kidsactivities|family",
        emojis="👶|👨‍👩‍👧|🧸|❤️",
        gear="Littlenest carrier|snack cups|Tinytrail stroller|baby carrier",
        roles="mom of 3|dad of two|parenting coach|boy mom",
        audiences="busy parents with young kids|new parents figuring out sleep|"
        "working moms who need simple routines|dads who share the parenting load",
        fans="mom of 2 👧👦|dad. husband. tired.|boy mom|toddler wrangler|mama bear",
        products="baby and toddler essentials|kids' snacks|family organisation apps|children's clothing",
        stems="Nest|Little|Tiny",
        related="baking|pets|diy_home|personal_finance|books",
        female=0.8, age=2.9,
    ),
    _topic(
        "pets", "dogs and pets",
        nouns="puppy|dog walk|golden retriever|dog treats|rescue dog|vet visit|leash|cat|dog park|grooming|fetch|"
        "zoomies|pet food|adoption",
        verbs="walking|training|cuddling|adopting|playing fetch",
        hashtags="dogsofinstagram|dog|puppy|doglover|rescuedog|petsofinstagram|dogmom|catsofinstagram|adoptdontshop",
        emojis="🐶|🐾|🐕|🐱|🦴",
        gear="Pawsome Co treats|slow feeder|Woofwell harness|harness",
        roles="dog mom|dog trainer|rescue volunteer|pet photographer",
        audiences="dog owners who treat their pets like family|people who just adopted a puppy|"
        "cat parents living in apartments|pet lovers who buy premium food",
        fans="dog mom 🐾|crazy cat lady|rescue dog parent|dogs > people|proud dog dad",
        products="natural dog treats|pet food|harnesses and leashes|pet insurance",
        stems="Paw|Woof|Tail",
        related="parenting|hiking",
        female=0.7, age=2.5,
    ),
    _topic(
        "budget_travel", "budget travel",
        nouns="backpacking|hostel|road trip|cheap flights|itinerary|weekend getaway|travel hacks|packing list|beach|"
        "city break|passport|carry-on|hidden gems|trip",
        verbs="traveling|backpacking|exploring|packing|wandering",
        hashtags="travel|budgettravel|backpacking|wanderlust|travelgram|traveltips|solotravel|roadtrip|explore",
        emojis="✈️|🌍|🎒|🏝️|🗺️",
        gear="Wayfarer backpack|packing cubes|Farefinder app|travel pillow",
        roles="budget traveler|solo traveler|digital nomad|travel blogger",
        audiences="students backpacking on a budget|young couples planning cheap weekend getaways|"
        "solo travelers looking for hidden gems|people who hunt for cheap flights",
        fans="wanderlust ✈️|30 countries and counting|travel on a budget|always packing|passport full",
        products="travel insurance|luggage and packing cubes|flight deal apps|hostels and stays",
        stems="Wayfar|Roam|Nomad",
        related="photography|hiking|personal_finance|cycling",
        female=0.6, age=2.0,
    ),
    _topic(
        "hiking", "hiking and the outdoors",
        nouns="trail|summit|hiking boots|camping|backpack|national park|mountains|sunrise hike|tent|lake|trail run|"
        "wildflowers|outdoors|peak",
        verbs="hiking|camping|climbing|exploring|trail running",
        hashtags="hiking|outdoors|getoutside|naturelovers|camping|mountains|trail|adventure|optoutside",
        emojis="🥾|⛰️|🏕️|🌲|🌄",
        gear="Ridgeline jacket|trekking poles|Summitgear tent|water filter",
        roles="hiker|outdoor guide|camper|trail runner",
        audiences="weekend hikers who love national parks|people who camp with their dogs|"
        "outdoor lovers planning multi-day treks|families who want easy nature walks",
        fans="happiest on a trail 🥾|mountains are calling|camp life|outdoorsy|peak bagger",
        products="hiking boots|outdoor jackets|camping gear|trail snacks",
        stems="Ridge|Summit|Trail",
        related="running|cycling|budget_travel|photography|pets",
        female=0.48, age=2.6,
    ),
    _topic(
        "gardening", "gardening",
        nouns="garden|tomatoes|seedlings|compost|houseplants|raised bed|harvest|herbs|monstera|soil|greenhouse|"
        "veggie patch|flowers|balcony garden",
        verbs="gardening|planting|harvesting|repotting|composting",
        hashtags="gardening|plantsofinstagram|urbangarden|growyourown|houseplants|gardenlife|plantlover|homegrown|garden",
        emojis="🌱|🌿|🍅|🌻|🪴",
        gear="Greenthumb Co soil|seed starter kit|Rootwise planter|watering can",
        roles="gardener|plant mom|allotment grower|horticulturist",
        audiences="people growing vegetables in small gardens|plant parents with too many houseplants|"
        "beginners starting a balcony garden|families who want to grow their own food",
        fans="plant mom 🪴|grows tomatoes|crazy plant lady|garden nerd|allotment life",
        products="seeds and seedlings|plant food and soil|garden tools|self-watering planters",
        stems="Root|Thumb|Bloom",
        related="vegan_cooking|diy_home|zero_waste",
        female=0.66, age=3.4,
    ),
    _topic(
        "diy_home", "DIY and home decor",
        nouns="home makeover|DIY project|paint|shelf|living room|thrift flip|renovation|cozy corner|wallpaper|"
        "flat-pack hack|tiny apartment|before and after|decor|power drill",
        verbs="painting|building|renovating|decorating|upcycling",
        hashtags="diy|homedecor|interiordesign|homemakeover|beforeandafter|diyhome|interior|renovation|cozyhome",
        emojis="🛠️|🏡|🎨|🪑|🛋️",
        gear="Nestcraft paint|peel-and-stick tiles|Homebody lamp|paint roller",
        roles="DIYer|interior designer|renovation addict|home stylist",
        audiences="renters who want to decorate on a budget|first-time home owners fixing up their house|"
        "people who love before-and-after makeovers|DIY fans who upcycle furniture",
        fans="DIY addict 🛠️|renovating a 1920s house|cozy home lover|houseplants & paint",
        products="paint and tools|home decor|furniture|storage solutions",
        stems="Craft|Home|Hearth",
        related="gardening|parenting|zero_waste",
        female=0.64, age=2.8,
    ),
    _topic(
        "personal_finance", "personal finance",
        nouns="budget|savings|index funds|side hustle|debt|investing|credit score|emergency fund|money tips|salary|"
        "retirement|financial freedom|spreadsheet|no-spend month",
        verbs="budgeting|saving|investing|paying off debt|tracking expenses",
        hashtags="personalfinance|budgeting|investing|financialfreedom|moneytips|savemoney|debtfree|sidehustle|fire",
        emojis="💰|📈|💸|🏦",
        gear="Coinly app|high-yield savings|Ledgerly planner|budget planner",
        roles="finance coach|CPA|money nerd|ex-banker",
        audiences="young professionals trying to save for their first home|people paying off student debt|"
        "families on a tight budget|millennials starting to invest",
        fans="debt free journey|saving for a house 🏡|index fund fan|frugal living",
        products="budgeting apps|savings accounts|investment platforms|credit cards",
        stems="Coin|Ledger|Penny",
        related="tech_gadgets|budget_travel|parenting",
        female=0.45, age=2.4,
    ),
    _topic(
        "books", "books",
        nouns="book review|TBR|reading list|novel|fantasy series|book club|library haul|thriller|romance|audiobook|"
        "bookstore|chapter|poetry|e-reader",
        verbs="reading|annotating|reviewing|rereading|book shopping",
        hashtags="bookstagram|booktok|books|reading|bookworm|bookclub|tbr|booklover|currentlyreading",
        emojis="📚|📖|☕|🌙",
        gear="Inkwell notebook|book sleeve|Pageturner lamp|reading light",
        roles="book reviewer|bookworm|librarian|author",
        audiences="avid readers who finish a book a week|book club members|romance and fantasy fans|"
        "people trying to read more and scroll less",
        fans="bookworm 📚|always reading|TBR too long|library card carrier|fantasy nerd",
        products="books and e-readers|audiobook subscriptions|book subscription boxes|reading accessories",
        stems="Ink|Page|Quill",
        related="coffee|music|parenting",
        female=0.76, age=2.2,
    ),
    _topic(
        "football", "football",
        nouns="match day|goal|derby|kit|stadium|league table|transfer news|fantasy football|kick-off|away day|"
        "penalty|highlights|clean sheet|fans",
        verbs="watching|cheering|chanting|predicting|playing five-a-side",
        hashtags="football|soccer|matchday|footballfans|fantasyfootball|goal|footballfan|derbyday|supporters",
        emojis="⚽|🏟️|🔥|🏆",
        gear="Goalpost boots|retro kit|Terrace Wear scarf|football boots",
        roles="football fan|Sunday league player|football analyst|matchday vlogger",
        audiences="football fans who never miss a match day|young men who play fantasy football|"
        "families who go to games together|Sunday league players",
        fans="⚽ till I die|season ticket holder|5-a-side legend|football & pints",
        products="football boots|fan merchandise|sports streaming subscriptions|sports drinks",
        stems="Goal|Pitch|Kick",
        related="gaming|running|music",
        female=0.22, age=2.1,
    ),
    _topic(
        "music", "music and guitar",
        nouns="guitar|cover|new single|setlist|gig|practice session|chords|studio|vinyl|playlist|concert|"
        "songwriting|riff|synth",
        verbs="playing|practicing|recording|songwriting|jamming",
        hashtags="music|guitar|newmusic|musician|singer|songwriter|cover|livemusic|guitarist",
        emojis="🎸|🎶|🎤|🎧",
        gear="Soundvale strings|capo|Echo Strings pedal|studio monitors",
        roles="guitarist|singer-songwriter|music teacher|producer",
        audiences="hobby musicians learning guitar|music lovers who go to gigs|bedroom producers making beats|"
        "people who always have headphones on",
        fans="music is life 🎶|guitar noob|gig goer|vinyl collector|always humming",
        products="guitars and strings|music lessons|headphones|music production software",
        stems="Sound|Echo|Chord",
        related="books|gaming|football",
        female=0.42, age=2.0,
    ),
    _topic(
        "zero_waste", "sustainable living",
        nouns="zero waste|refill|compost|thrift|reusable bottle|plastic free|eco swaps|bulk store|upcycling|"
        "sustainable living|beeswax wraps|secondhand|capsule wardrobe|garden",
        verbs="reducing|refilling|composting|mending|swapping",
        hashtags="zerowaste|sustainableliving|plasticfree|ecofriendly|sustainability|slowfashion|reuse|"
        "climateaction|lowwaste",
        emojis="♻️|🌍|🌱|🐝",
        gear="Refillery soap|bamboo toothbrush|Loopware bottle|shampoo bar",
        roles="zero waste blogger|climate educator|eco mum|sustainability consultant",
        audiences="eco-conscious shoppers who avoid plastic|people trying to live more sustainably|"
        "young families making greener swaps|shoppers who prefer second-hand",
        fans="low waste living ♻️|climate optimist|thrift & refill|eco warrior",
        products="reusable household products|refill shampoo and soap|sustainable clothing|eco cleaning products",
        stems="Loop|Refill|Earth",
        related="vegan_cooking|gardening|diy_home|fashion",
        female=0.72, age=2.4,
    ),
)

TOPICS: tuple[Topic, ...] = tuple(replace(spec, id=i) for i, spec in enumerate(_SPECS))
TOPIC_INDEX: dict[str, int] = {t.name: t.id for t in TOPICS}
N_TOPICS = len(TOPICS)

# How popular each topic is among creators and brands (relative); fitness, food and beauty dominate the market.
POPULARITY = np.array(
    [1.3, 0.7, 1.2, 1.0, 1.0, 0.9, 0.8, 1.2, 1.1, 1.3, 1.0, 0.9, 0.8, 1.1, 1.1, 1.0, 0.9, 0.7, 0.9, 0.7, 0.9, 0.8,
     0.7, 0.6],
    dtype=np.float64,
)
# fmt: on
POPULARITY /= POPULARITY.sum()


@lru_cache(maxsize=1)
def related_matrix() -> npt.NDArray[np.float64]:
    """Symmetric topic × topic matrix: 1 where two topics are related, 0 elsewhere (zero diagonal)."""
    rel = np.zeros((N_TOPICS, N_TOPICS), dtype=np.float64)
    for topic in TOPICS:
        for other in topic.related:
            rel[topic.id, TOPIC_INDEX[other]] = 1.0
            rel[TOPIC_INDEX[other], topic.id] = 1.0
    return rel


# Generic lifestyle filler that appears under every topic.
GENERIC_NOUNS = _split(
    "weekend|vibes|morning|sunday|life update|self care|good times|friends|summer|little things|new week|coffee|"
    "sunset|home|routine|walk|brunch|holiday"
)
GENERIC_PHRASES = _split(
    "monday again|weekend mode on|grateful for the little things|life lately|new week, new goals|sunday reset|"
    "good vibes only|main character energy|small wins count|just vibes|slow mornings are the best|"
    "not me posting this late|photo dump|catching up on everything|that's the post"
)
GENERIC_HASHTAGS = _split(
    "instagood|photooftheday|love|lifestyle|weekendvibes|explore|happy|reels|mood|sundayfunday|motivation|"
    "dailyvlog|goodvibes|selfcare|coffee"
)
TIKTOK_HASHTAGS = _split("fyp|foryou|foryoupage|viral|tiktokmademebuyit")
YOUTUBE_HASHTAGS = _split("shorts|vlog|youtubeshorts")
GENERIC_EMOJIS = _split("✨|😍|🙌|❤️|😂|🥹|🔥|👇|💯|🤍|☀️|😴|🙏|💕|😅")
FEELINGS = _split(
    "honestly obsessed|not gonna lie, this was hard|so proud of this one|10/10 would recommend|still not over it|"
    "worth every second|felt amazing|ok I'm hooked|a little chaotic but fun|best decision this month|"
    "tell me I'm not the only one"
)
TIMES = _split("this morning|tonight|today|yesterday|this weekend|before work|after work|at 6am|on my lunch break")
WEEKDAYS = _split("monday|tuesday|wednesday|thursday|friday|saturday|sunday")
