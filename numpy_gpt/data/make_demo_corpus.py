"""Write demo_corpus.txt: short, simple English stories from a small template grammar.

The grammar and its output are original work written for numpy-gpt and share
the project's MIT licence. The output is deterministic (random.Random(SEED)),
so running this script again reproduces demo_corpus.txt byte for byte:

    python numpy_gpt/data/make_demo_corpus.py

Seven kinds of story (finding a lost thing, learning a skill, getting lost,
four small fables, a nature paragraph, a day with a friend, a working day)
draw their characters, places, objects and phrasings from the lists below,
so a character-level model sees plenty of ordinary English to imitate.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

SEED = 2024
TARGET_CHARS = 64_000
OUT = Path(__file__).with_name("demo_corpus.txt")

GIRLS = ["Lily", "Mia", "Anna", "Rosa", "Nora", "Ivy", "Ruby", "Clara", "Ella", "Maya",
         "Zoe", "Lucy", "Hazel", "Iris", "Greta", "Alma", "June", "Wren"]
BOYS = ["Tom", "Sam", "Ben", "Max", "Leo", "Finn", "Oscar", "Hugo", "Jack", "Theo",
        "Eli", "Otto", "Felix", "Jonah", "Milo", "Arlo", "Noah", "Paul"]
ANIMALS = ["fox", "rabbit", "bear", "mouse", "owl", "cat", "dog", "duck", "frog", "squirrel",
           "hedgehog", "turtle", "goat", "horse", "lamb", "robin", "badger", "otter", "deer", "pig"]
ADJECTIVES = ["little", "brave", "shy", "curious", "kind", "clever", "sleepy", "happy", "young",
              "old", "busy", "gentle", "careful", "cheerful", "quiet", "tiny", "friendly", "funny"]
HOMES = ["in a small house near the river", "in a cozy burrow under a hill",
         "in a busy town by the sea", "on a quiet farm at the edge of the forest",
         "in a tall tree in the park", "in an old mill beside the stream",
         "in a little cottage in the valley", "at the edge of a green meadow",
         "in a yellow house with a red door", "near a pond full of lily pads",
         "in a village high up in the mountains", "in a hollow log deep in the woods"]
HABITS = ["walk to the market", "read books by the window", "sing in the morning",
          "collect shiny stones", "watch the clouds drift by", "help in the garden",
          "play by the pond", "bake bread with jam", "count the stars at night",
          "draw pictures of birds", "build towers out of sticks", "listen to the rain",
          "race the wind down the hill", "feed the ducks at the lake", "pick wild flowers"]
OBJECTS = [("red", "ball"), ("old", "key"), ("tiny", "bell"), ("blue", "feather"),
           ("wooden", "box"), ("golden", "coin"), ("paper", "boat"), ("woolly", "mitten"),
           ("shiny", "shell"), ("yellow", "kite"), ("silver", "spoon"), ("striped", "scarf"),
           ("green", "marble"), ("little", "drum"), ("brass", "whistle"), ("painted", "egg")]
FIND_SPOTS = ["under an old tree", "behind the barn", "near the pond", "in the tall grass",
              "on the path to school", "beside a big rock", "at the bottom of the hill",
              "inside a hollow log", "next to the well", "under a pile of leaves"]
PLACES = ["the market", "the old bridge", "the top of the hill", "the pond", "the library",
          "the beach", "the orchard", "the bakery", "the meadow", "the lake", "the station"]
TIMES = ["morning", "afternoon", "evening"]
ONE_DAY = ["One sunny morning", "One rainy afternoon", "One cold winter day",
           "One bright spring day", "One quiet evening", "One windy autumn day", "One day",
           "Early one morning", "One warm summer night"]
TOGETHER = ["played by the river", "shared their lunch", "told each other stories",
            "went looking for treasure", "watched the sunset from the hill", "built a tree house",
            "walked to school", "picked berries in the woods"]
FOODS = ["berries", "apples", "nuts", "plums", "carrots", "cherries", "honey cakes", "pears"]
MENTORS = ["grandmother", "grandfather", "mother", "father", "older sister", "older brother",
           "teacher", "aunt", "uncle", "neighbor"]


@dataclass(frozen=True)
class Char:
    """A character: name, what it is, and which pronouns the sentences use."""

    name: str
    kind: str
    female: bool
    adj: str

    he = property(lambda s: "she" if s.female else "he")
    He = property(lambda s: "She" if s.female else "He")
    him = property(lambda s: "her" if s.female else "him")
    his = property(lambda s: "her" if s.female else "his")
    His = property(lambda s: "Her" if s.female else "His")
    himself = property(lambda s: "herself" if s.female else "himself")
    a = property(lambda s: f"{an(s.adj)} {s.adj} {s.kind}")      # "a little fox"
    A = property(lambda s: cap(s.a))


def an(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def title(s: str) -> str:
    """Title case that leaves short function words alone: "ride a bike" -> "Ride a Bike"."""
    small = {"a", "an", "the", "on", "to", "of", "in", "and"}
    return " ".join(w if i and w in small else cap(w) for i, w in enumerate(s.split()))


class Story:
    """Random choices plus sentence assembly for one story."""

    def __init__(self, r: random.Random):
        self.r = r
        self.used: set[str] = set()

    def pick(self, options):
        return self.r.choice(options)

    def char(self, kind: str | None = None, animal: bool | None = None) -> Char:
        female = self.r.random() < 0.5
        names = [n for n in (GIRLS if female else BOYS) if n not in self.used]
        name = self.pick(names)
        self.used.add(name)
        if kind is None:
            animal = self.r.random() < 0.6 if animal is None else animal
            kind = self.pick(ANIMALS) if animal else ("girl" if female else "boy")
        adjectives = ADJECTIVES if kind not in ("girl", "boy") else [j for j in ADJECTIVES if j != "old"]
        return Char(name, kind, female, self.pick(adjectives))


def paragraph(sentences: list[str]) -> str:
    return " ".join(s for s in sentences if s)


def found_thing(s: Story) -> tuple[str, str]:
    a, b = s.char(), s.char()
    color, thing = s.pick(OBJECTS)
    obj = f"{an(color)} {color} {thing}"
    home = s.pick(HOMES)
    opening = s.pick([
        f"Once upon a time, there was {a.a} named {a.name}. {a.He} lived {home}.",
        f"There once was {a.a} called {a.name}, who lived {home}.",
        f"Long ago, {home}, lived {a.a} named {a.name}.",
        f"{a.name} was {a.a} who lived {home}.",
    ])
    habit = s.pick([
        f"Every {s.pick(TIMES)}, {a.he} liked to {s.pick(HABITS)}.",
        f"{a.name} loved to {s.pick(HABITS)} more than anything.",
        f"Most days, {a.he} would {s.pick(HABITS)} and then {s.pick(HABITS)}.",
    ])
    finding = s.pick([
        f"{s.pick(ONE_DAY)}, {a.name} found {obj} {s.pick(FIND_SPOTS)}.",
        f"{s.pick(ONE_DAY)}, on the way to {s.pick(PLACES)}, {a.he} saw {obj} {s.pick(FIND_SPOTS)}.",
    ])
    wonder = s.pick([
        f"{a.He} picked it up and looked at it carefully.",
        f"\"What a lovely {thing}!\" {a.he} said.",
        f"{a.He} wondered who it belonged to.",
        f"{a.He} turned it over in {a.his} hands.",
    ])
    asking = s.pick([
        f"\"Whose {thing} is this?\" {a.he} asked everyone {a.he} met.",
        f"{a.He} carried it to {s.pick(PLACES)} and asked, \"Has anyone lost {an(thing)} {thing}?\"",
        f"{a.He} decided to find the owner.",
    ])
    owner = s.pick([
        f"At last, {b.a} named {b.name} came running. \"That is mine!\" {b.he} said. \"I lost it {s.pick(['yesterday', 'last week', 'this morning'])}.\"",
        f"Soon {a.he} met {b.a} named {b.name}, who was crying. \"I lost my {thing},\" said {b.name}.",
        f"Near {s.pick(PLACES)}, {b.a} named {b.name} was looking everywhere. \"Have you seen my {thing}?\" {b.he} asked.",
    ])
    giving = s.pick([
        f"{a.name} smiled and gave the {thing} back.",
        f"\"Here it is,\" said {a.name}, and {a.he} held out the {thing}.",
        f"{a.name} was glad to help, and {a.he} gave {b.name} the {thing}.",
    ])
    thanks = s.pick([
        f"\"Thank you,\" said {b.name}. \"You are very kind.\"",
        f"{b.name} hugged {a.name} and thanked {a.him} again and again.",
        f"{b.name} was so happy that {b.he} danced in a circle.",
    ])
    ending = s.pick([
        f"From that day on, {a.name} and {b.name} were good friends.",
        f"After that, the two of them {s.pick(TOGETHER)} every {s.pick(TIMES)}.",
        f"And that is how {a.name} made a new friend.",
        f"{a.name} walked home feeling warm inside.",
    ])
    title = s.pick([f"The {cap(color)} {cap(thing)}", f"{a.name} and the {cap(thing)}", f"The Lost {cap(thing)}"])
    return title, paragraph([opening, habit, finding, wonder, asking, owner, giving, thanks, ending])


SKILLS = [
    ("ride a bike", "{He} wobbled, fell over and scraped {his} knee.",
     "At last, {he} rode all the way down the lane without falling."),
    ("swim", "The water was cold, and {he} splashed and sank.",
     "Soon {he} could swim across the pond and back."),
    ("fly a kite", "The wind pulled the kite down into a tree.",
     "The kite rose high above the trees, and {he} laughed with joy."),
    ("bake bread", "The first loaf came out hard and burnt on top.",
     "The bread came out warm and golden, and the whole house smelled sweet."),
    ("read", "The letters seemed to jump around the page.",
     "One evening, {he} read a whole book all by {himself}."),
    ("whistle", "All that came out was a little puff of air.",
     "Then, one morning, a clear, bright note came out."),
    ("climb the big oak tree", "{He} slipped on the first branch and landed in the leaves.",
     "Finally {he} reached the top and could see the whole valley."),
    ("play the flute", "The notes sounded like a squeaky door.",
     "Soon {he} could play a happy tune for {his} friends."),
    ("plant a garden", "Nothing grew at first, because {he} forgot to water the seeds.",
     "By summer, the garden was full of beans, carrots and tall sunflowers."),
    ("skate on the ice", "{His} feet slid out from under {him}, and {he} sat down hard.",
     "Before long, {he} was gliding across the pond in wide, smooth circles."),
    ("tie {his} shoes", "The laces kept turning into a big, messy knot.",
     "One morning, {he} tied both shoes before breakfast and shouted with pride."),
]
MORALS = ["practice makes hard things easier", "it is fine to make mistakes while you learn",
          "patience is a kind of strength", "small steps add up to big ones",
          "asking for help is nothing to be ashamed of", "trying again is the bravest thing of all"]


def learning(s: Story) -> tuple[str, str]:
    a = s.char()
    skill, fail, win = s.pick(SKILLS)
    f = dict(he=a.he, He=a.He, him=a.him, his=a.his, His=a.His, himself=a.himself)
    skill, fail, win = skill.format(**f), fail.format(**f), win.format(**f)
    mentor = s.pick(MENTORS)
    return f"{a.name} Learns to {title(skill)}", paragraph([
        s.pick([f"{a.name} was {a.a} who wanted to learn to {skill}.",
                f"More than anything, {a.name} the {a.kind} wished {a.he} could {skill}.",
                f"All of {a.name}'s friends knew how to {skill}, but {a.name} did not."]),
        s.pick([f"{a.He} asked {a.his} {mentor} for help.", f"So {a.he} went to see {a.his} {mentor}."]),
        s.pick([f"\"Try a little every day,\" said {a.his} {mentor}. \"That is the secret.\"",
                f"\"Everyone makes mistakes at first,\" said {a.his} {mentor}. \"Be patient.\"",
                f"\"Watch me first, and then you try,\" said {a.his} {mentor}."]),
        cap(fail),
        s.pick([f"{a.name} felt sad, but {a.he} did not give up.",
                f"{a.He} wanted to cry, but instead {a.he} took a deep breath and tried again.",
                f"\"I will never learn,\" {a.he} said. But the next day {a.he} tried again."]),
        s.pick([f"{a.He} practiced every {s.pick(TIMES)} for {s.pick(['a week', 'two weeks', 'a whole month', 'many days'])}.",
                f"Day after day, {a.he} tried, and every day it went a little better."]),
        cap(win),
        s.pick([f"{a.name} learned that {s.pick(MORALS)}.", f"\"You did it!\" said {a.his} {mentor}, and they both smiled."]),
    ])


def lost_in_woods(s: Story) -> tuple[str, str]:
    a, b = s.char(), s.char(animal=True)
    wild = s.pick(["the forest", "the hills", "the marsh", "the woods behind the farm", "the pine forest"])
    why = s.pick(["pick berries", "look for mushrooms", "gather pine cones", "watch the birds", "find a quiet place to read"])
    return f"{a.name} and the Way Home", paragraph([
        f"{s.pick(ONE_DAY)}, {a.name} the {a.kind} went to {wild} to {why}.",
        s.pick([f"{a.He} walked and walked, and soon the path disappeared.",
                f"{a.He} followed a butterfly from flower to flower and forgot to watch the way."]),
        s.pick([f"When {a.he} looked around, nothing looked familiar.", f"Every tree looked the same."]),
        f"{a.name} was lost.",
        s.pick(["The sky grew dark and the wind began to blow.", "Far away, an owl began to hoot.",
                "Clouds covered the sun, and the air turned cold."]),
        s.pick([f"{a.He} sat down on a log and felt like crying.", f"{a.His} heart beat fast."]),
        f"Just then, {b.a} named {b.name} peeked out from behind a {s.pick(['bush', 'rock', 'tree', 'fern'])}.",
        s.pick([f"\"Are you lost?\" asked {b.name}.", f"\"Why are you sad?\" asked {b.name}."]),
        f"\"I cannot find my way home,\" said {a.name}.",
        s.pick([f"\"Follow me,\" said {b.name}. \"I know every path around here.\"",
                f"\"Do not worry,\" said {b.name}. \"I will take you to the edge of {wild[4:]}.\""]),
        s.pick(["Together they crossed a little stream and climbed a grassy hill.",
                "They walked side by side past tall trees and up a steep hill."]),
        f"From the top, {a.name} could see {a.his} home and the smoke rising from the chimney.",
        f"{a.name} thanked {b.name} and ran the rest of the way.",
        s.pick([f"That night, {a.he} ate a warm supper and told {a.his} family all about {a.his} adventure.",
                f"The next day, {a.he} brought {b.name} a basket of {s.pick(FOODS)} to say thank you."]),
    ])


def fable(s: Story) -> tuple[str, str]:
    which = s.r.randrange(4)
    if which == 0:                                         # the boaster and the plodder
        f = s.char(kind=s.pick(["hare", "rabbit", "deer", "horse", "squirrel"]))
        w = s.char(kind=s.pick(["snail", "turtle", "tortoise", "hedgehog", "beetle"]))
        nap = s.pick(["lay down in the shade for a nap", "stopped to eat some sweet clover",
                      "stopped to show off to a group of birds"])
        return f"The {cap(f.kind)} and the {cap(w.kind)}", paragraph([
            f"{f.A} named {f.name} liked to boast about how fast {f.he} was.",
            f"\"Nobody can beat me,\" {f.he} said to everyone {f.he} met.",
            f"One day, {w.a} named {w.name} said quietly, \"I will race you.\"",
            "All the animals laughed, but the race began the next morning.",
            f"At the start, {f.name} dashed ahead and was soon out of sight.",
            f"Halfway there, {f.he} thought, \"I have plenty of time,\" and {nap}.",
            f"Meanwhile, {w.name} kept going, one slow step after another.",
            f"When {f.name} looked up, {w.name} was almost at the finish.",
            f"{f.name} ran as fast as {f.he} could, but it was too late. {w.name} won the race.",
            s.pick(["Slow and steady wins the race.", "Keep going, and do not boast."]),
        ])
    if which == 1:                                         # the worker and the singer
        w = s.char(kind=s.pick(["ant", "squirrel", "mouse", "bee"]))
        p = s.char(kind=s.pick(["grasshopper", "cricket", "butterfly", "frog"]))
        food = s.pick(["seeds", "nuts", "grain", "berries"])
        return f"The {cap(w.kind)} and the {cap(p.kind)}", paragraph([
            f"All summer long, {w.a} named {w.name} carried {food} to {w.his} home.",
            f"{p.A} named {p.name} sang and danced in the sun.",
            f"\"Why do you work so hard on such a lovely day?\" asked {p.name}.",
            f"\"Winter is coming,\" said {w.name}. \"I am getting ready.\"",
            f"{p.name} laughed and went on singing.",
            "Then the cold wind came, and snow covered the fields.",
            f"{p.name} was hungry and had nothing to eat, so {p.he} knocked on {w.name}'s door.",
            s.pick([f"{w.name} shared {w.his} {food}, and {p.name} promised to help next summer.",
                    f"{w.name} let {p.him} in, and that winter {p.name} sang while they ate."]),
            "There is a time for work and a time for play.",
        ])
    if which == 2:                                         # the thirsty bird
        b = s.char(kind=s.pick(["crow", "raven", "magpie", "jay", "sparrow"]))
        return f"The Thirsty {cap(b.kind)}", paragraph([
            f"It had not rained for many days, and {b.a} named {b.name} was very thirsty.",
            f"At last, {b.he} found a tall jug with a little water at the bottom.",
            f"{b.He} pushed {b.his} beak in, but {b.he} could not reach the water.",
            f"{b.He} thought and thought. Then {b.he} had an idea.",
            f"{b.He} picked up a pebble and dropped it into the jug. Then another, and another.",
            "Slowly the water rose, until it came up to the top.",
            f"{b.name} drank and drank until {b.he} was no longer thirsty.",
            s.pick(["Where there is a will, there is a way.", "A little thinking can solve a big problem."]),
        ])
    big = s.char(kind=s.pick(["lion", "bear", "tiger", "wolf"]))
    small = s.char(kind=s.pick(["mouse", "vole", "shrew"]))
    return f"The {cap(big.kind)} and the {cap(small.kind)}", paragraph([
        f"{big.A} named {big.name} was sleeping in the sun when {small.a} named {small.name} ran across {big.his} nose.",
        f"{big.name} woke up and caught {small.name} in {big.his} paw.",
        f"\"Please let me go,\" said {small.name}. \"One day I will help you.\"",
        f"{big.name} laughed. \"How could someone so small help me?\" But {big.he} let {small.him} go.",
        f"A few days later, {big.name} was caught in a hunter's net.",
        f"{small.name} heard {big.him} roar and came running.",
        f"{small.He} chewed through the ropes, one by one, until {big.name} was free.",
        "Little friends can be great friends.",
    ])


NATURE = {
    "Spring": ["In spring, the days grow longer and the air gets warmer.",
               "Birds build nests in the trees and sing from early morning.",
               "The first flowers open in the fields, and bees come out to visit them.",
               "Farmers plant their seeds, and young lambs play in the meadow.",
               "Rain falls often, and everything turns green.",
               "Frogs lay their eggs in the ponds, and soon the water is full of tadpoles."],
    "Summer": ["Summer is the warmest time of the year.",
               "The sun rises early and sets late, so the evenings are long and bright.",
               "Children swim in the lake and eat cold fruit in the shade.",
               "Fields of wheat turn gold, and the gardens are full of vegetables.",
               "On hot nights, crickets sing in the grass.",
               "Sometimes a thunderstorm rolls in, and then the air smells fresh and clean."],
    "Autumn": ["In autumn, the leaves turn red, orange and yellow.",
               "The wind blows the leaves from the trees, and they cover the paths.",
               "Squirrels hide nuts to eat during the winter.",
               "Farmers bring in the harvest: apples, pumpkins and potatoes.",
               "Many birds fly south to warmer lands.",
               "The mornings are misty, and the evenings grow cool."],
    "Winter": ["Winter is the coldest time of the year.",
               "Snow covers the roofs, the roads and the fields.",
               "Ponds freeze, and children skate on the ice.",
               "Some animals sleep through the winter in warm dens.",
               "The nights are long, and families sit together by the fire.",
               "When the sun shines on fresh snow, everything sparkles."],
    "The Sea": ["The sea is wide and deep, and its water tastes of salt.",
                "Twice a day, the tide comes in and goes out again.",
                "Crabs hide under rocks, and gulls call above the waves.",
                "Fishing boats leave the harbor before dawn.",
                "On calm days the water is blue and still; on stormy days the waves crash on the shore.",
                "Shells and smooth stones wash up on the beach."],
    "The Night Sky": ["At night, when the sky is clear, you can see thousands of stars.",
                      "The moon changes shape, from a thin curve to a full round circle and back.",
                      "The stars seem to move slowly across the sky as the night goes on.",
                      "Long ago, sailors used the stars to find their way across the sea.",
                      "Owls and bats wake up when the sun goes down.",
                      "Far from town lights, the sky is darker and the stars are brighter."],
    "Bees": ["Bees live together in a hive.",
             "They fly from flower to flower to collect nectar and pollen.",
             "Back in the hive, they turn the nectar into honey.",
             "When a bee finds good flowers, it dances to tell the others where they are.",
             "By carrying pollen between flowers, bees help plants make fruit and seeds.",
             "A hive has one queen, who lays all the eggs."],
    "The River": ["A river begins as a small stream high in the hills.",
                  "As it flows down, other streams join it and it grows wider.",
                  "Fish swim against the current, and ducks float along the banks.",
                  "Towns are often built beside rivers, with bridges to cross them.",
                  "After heavy rain, the river rises and runs fast and brown.",
                  "At last, the river reaches the sea."],
}


def nature(s: Story) -> tuple[str, str]:
    topic = s.pick(sorted(NATURE))
    facts = NATURE[topic]
    rest = facts[1:]
    s.r.shuffle(rest)
    return topic, paragraph([facts[0]] + rest[: s.r.randint(3, 5)])


WEATHER = {
    "sunny": ["have a picnic in the park", "go to the beach", "ride our bikes to the lake"],
    "rainy": ["build a fort out of blankets", "bake cookies", "read stories in the attic"],
    "windy": ["fly kites on the hill", "watch the sailboats on the lake"],
    "snowy": ["build a snowman", "go sledding down the big hill"],
}
DETAILS = {
    "have a picnic in the park": "They ate sandwiches and strawberries on a checkered blanket.",
    "go to the beach": "They built a sandcastle with four towers and a moat.",
    "ride our bikes to the lake": "They rode past the farms and stopped to skip stones on the water.",
    "build a fort out of blankets": "They used every chair in the house, and the fort had two rooms.",
    "bake cookies": "The kitchen was covered in flour, but the cookies were delicious.",
    "read stories in the attic": "They read about dragons, pirates and a cat who sailed to the moon.",
    "fly kites on the hill": "One kite was shaped like a fish, and the other like a bird.",
    "watch the sailboats on the lake": "They counted eleven boats with white sails.",
    "build a snowman": "They gave the snowman a carrot nose and an old hat.",
    "go sledding down the big hill": "They raced down the hill again and again until their cheeks were red.",
}


def day_with_friend(s: Story) -> tuple[str, str]:
    a, b = s.char(), s.char()
    weather = s.pick(sorted(WEATHER))
    plan = s.pick(WEATHER[weather])
    return f"A {cap(weather)} Day", paragraph([
        s.pick([f"\"What shall we do today?\" asked {a.name}.",
                f"{a.name} knocked on {b.name}'s door. \"What shall we do today?\" {a.he} asked."]),
        f"{b.name} looked out of the window. \"It is {weather},\" {b.he} said. \"Let us {plan}.\"",
        s.pick([f"\"What a good idea!\" said {a.name}.", f"{a.name} clapped {a.his} hands."]),
        DETAILS[plan],
        s.pick(["When the sun went down, they were tired but happy.",
                "By evening, they were hungry, so they went home for supper."]),
        s.pick([f"\"This was the best day,\" said {a.name}.", f"\"Let us do it again tomorrow,\" said {b.name}."]),
    ])


JOBS = {
    "baker": ("baked bread, rolls and pies", "sold warm loaves to everyone in town",
              "swept the flour from the floor"),
    "farmer": ("fed the hens and milked the cow", "worked in the fields",
               "sat on the porch and watched the sun go down"),
    "fisher": ("rowed out to sea in a small boat", "mended the nets on the dock",
               "cooked fish soup for the family"),
    "teacher": ("opened the school and lit the stove", "taught the children to read and count",
                "read stories aloud by the fire"),
    "gardener": ("watered the roses and pulled the weeds", "planted new trees in the square",
                 "wrote down which flowers had bloomed"),
    "doctor": ("visited sick people in their homes", "listened to hearts and looked at sore throats",
               "read thick books about medicine"),
    "librarian": ("unlocked the library and dusted the shelves", "helped people find the right books",
                  "mended torn pages with careful hands"),
}


def working_day(s: Story) -> tuple[str, str]:
    a = s.char(animal=False)
    job = s.pick(sorted(JOBS))
    morning, noon, evening = JOBS[job]
    b = s.char(animal=False)
    help_ = s.pick([
        f"One day, a child named {b.name} came by with a sad face. {a.name} listened, and soon {b.name} was smiling again.",
        f"One day, the bridge into town was broken, so {a.name} and {a.his} neighbors fixed it together.",
        f"One winter, when the snow was deep, {a.name} brought food to the old people who could not go out.",
    ])
    return f"The Kind {cap(job)}", paragraph([
        f"{a.name} was {an(job)} {job} in {s.pick(['a small town', 'a village by the sea', 'a town among the hills'])}.",
        f"Every morning, {a.he} woke up before the sun and {morning}.",
        f"In the afternoon, {a.he} {noon}.",
        f"In the evening, {a.he} {evening}.",
        help_,
        s.pick([f"Everyone loved {a.name}.", f"People said that {a.name} had the kindest heart of all."]),
    ])


STORIES = [found_thing, found_thing, learning, learning, lost_in_woods, fable, fable,
           nature, day_with_friend, working_day]


def make_corpus(seed: int = SEED, target_chars: int = TARGET_CHARS) -> str:
    """Stories separated by blank lines, each under its title, until target_chars is reached."""
    r = random.Random(seed)
    parts, size = [], 0
    while size < target_chars:
        title, body = r.choice(STORIES)(Story(r))
        parts.append(f"{title}\n\n{body}\n")
        size += len(parts[-1]) + 1
    return "\n".join(parts)


if __name__ == "__main__":
    OUT.write_text(make_corpus(), encoding="utf-8")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
