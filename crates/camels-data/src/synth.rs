//! A synthetic fact world, deterministic from a seed: invented people, organisations and towns
//! whose names no model could know, documents that state 3–5 of their facts amid filler and
//! distractor sentences, and one question per stated fact whose answer appears verbatim.
//!
//! The four splits (base-model pre-training, meta-training, meta-validation, test) are separate
//! worlds: no entity and no name word is shared between them. A model trained on `pretrain` can
//! learn the format (how questions relate to documents) but cannot know a test fact before it has
//! read the test document; the answer tokens (names, numbers, dates, roles) are the informative
//! part of every document. `unrelated.txt` is generic prose about none of the entities.
//!
//! The splits are generated in the order test, meta-val, meta-train, pretrain, each from its own
//! seeded generator, so the test world depends only on the seed, `n_test` and the document knobs.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{DataError, Document, Question, Rng, jsonl};

/// Size and shape knobs of the synthetic world. The default suits a CPU demo: documents of about
/// 60–120 GPT-2 tokens, a few hundred documents per split and a larger pre-training split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SynthConfig {
    /// Seed of everything.
    pub seed: u64,
    /// Documents in `pretrain.jsonl` (base-model pre-training and QA tuning).
    pub n_pretrain: usize,
    /// Documents in `meta_train.jsonl`.
    pub n_meta_train: usize,
    /// Documents in `meta_val.jsonl`.
    pub n_meta_val: usize,
    /// Documents in `test.jsonl`.
    pub n_test: usize,
    /// Facts (and so questions) per document, `[min, max]` inclusive; towns have 5 facts in all,
    /// organisations 6 and people 7, which caps `max` per document.
    pub facts_per_doc: (usize, usize),
    /// Filler sentences per document (no facts in them).
    pub filler_sentences: usize,
    /// Distractor sentences per document: facts about other entities of the same world.
    pub distractor_sentences: usize,
    /// Paragraphs of `unrelated.txt`.
    pub unrelated_paragraphs: usize,
}

impl Default for SynthConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            n_pretrain: 1000,
            n_meta_train: 300,
            n_meta_val: 100,
            n_test: 200,
            facts_per_doc: (3, 5),
            filler_sentences: 2,
            distractor_sentences: 1,
            unrelated_paragraphs: 200,
        }
    }
}

impl SynthConfig {
    /// Checks that the knobs can work together.
    pub fn validate(&self) -> Result<(), DataError> {
        let (min, max) = self.facts_per_doc;
        if min == 0 || min > max {
            return Err(DataError::InvalidOption {
                option: "facts_per_doc",
                value: format!("({min}, {max})"),
                expected: "1 <= min <= max".to_string(),
            });
        }
        Ok(())
    }
}

/// One split of the world: its documents and every entity name it uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthSplit {
    /// `pretrain`, `meta_train`, `meta_val` or `test` (the file stem).
    pub name: &'static str,
    /// The documents, each with one question per stated fact.
    pub documents: Vec<Document>,
    /// Full names of every entity of this split's world (organisations without "the").
    pub entity_names: Vec<String>,
}

/// The whole synthetic world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthWorld {
    /// Base-model pre-training split.
    pub pretrain: SynthSplit,
    /// Meta-training split.
    pub meta_train: SynthSplit,
    /// Meta-validation split.
    pub meta_val: SynthSplit,
    /// Test split.
    pub test: SynthSplit,
    /// Generic text about none of the entities (paragraphs separated by blank lines).
    pub unrelated: String,
}

impl SynthWorld {
    /// The four splits, in file order: pretrain, meta_train, meta_val, test.
    pub fn splits(&self) -> [&SynthSplit; 4] {
        [&self.pretrain, &self.meta_train, &self.meta_val, &self.test]
    }
}

/// Generates the world described by `config`.
///
/// ```
/// use camels_data::{generate_world, SynthConfig};
/// let config = SynthConfig { n_pretrain: 4, n_meta_train: 2, n_meta_val: 2, n_test: 2, ..SynthConfig::default() };
/// let world = generate_world(&config).unwrap();
/// let doc = &world.test.documents[0];
/// for q in &doc.questions {
///     assert!(doc.text.contains(&q.answers[0]));
/// }
/// ```
pub fn generate_world(config: &SynthConfig) -> Result<SynthWorld, DataError> {
    config.validate()?;
    let mut names = NameGen { used: HashSet::new() };
    let mut split = |name: &'static str, salt: u64, n: usize| {
        let mut rng = Rng::new(config.seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        build_split(name, n, config, &mut rng, &mut names)
    };
    let test = split("test", 4, config.n_test);
    let meta_val = split("meta_val", 3, config.n_meta_val);
    let meta_train = split("meta_train", 2, config.n_meta_train);
    let pretrain = split("pretrain", 1, config.n_pretrain);
    let mut rng = Rng::new(config.seed ^ 5u64.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let unrelated = unrelated_text(config.unrelated_paragraphs, &mut rng);
    Ok(SynthWorld { pretrain, meta_train, meta_val, test, unrelated })
}

/// Generates the world and writes `pretrain.jsonl`, `meta_train.jsonl`, `meta_val.jsonl`,
/// `test.jsonl` (the crate's JSONL format) and `unrelated.txt` into `dir` (created if missing).
/// Returns the world and the paths written.
pub fn write_world(dir: &Path, config: &SynthConfig) -> Result<(SynthWorld, Vec<PathBuf>), DataError> {
    let world = generate_world(config)?;
    std::fs::create_dir_all(dir).map_err(|source| DataError::Io { path: dir.to_path_buf(), source })?;
    let mut written = Vec::new();
    for split in world.splits() {
        let path = dir.join(format!("{}.jsonl", split.name));
        jsonl::write(&path, &split.documents)?;
        written.push(path);
    }
    let path = dir.join("unrelated.txt");
    std::fs::write(&path, &world.unrelated).map_err(|source| DataError::Io { path: path.clone(), source })?;
    written.push(path);
    Ok((world, written))
}

// ---------------------------------------------------------------------------------------------
// Entities and names

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Person,
    Org,
    Town,
}

#[derive(Debug, Clone)]
struct Entity {
    kind: Kind,
    /// Full name: "Varodek Quillian", "Ostrenn Institute" (no article), "Belkarra".
    name: String,
    /// Later mentions: the family name of a person, else the full reference.
    short: String,
    /// One value per relation of the entity's kind, in [`RELATIONS`] order for that kind.
    facts: Vec<(usize, Value)>,
}

impl Entity {
    /// How the entity is named inside a sentence ("the Ostrenn Institute").
    fn reference(&self) -> String {
        match self.kind {
            Kind::Org => format!("the {}", self.name),
            _ => self.name.clone(),
        }
    }
}

/// Builds names from syllables; `used` holds every name word of the whole world (lower case), so
/// no two entities, in any split, share a name word.
struct NameGen {
    used: HashSet<String>,
}

const ONSETS: [&str; 28] = [
    "b", "br", "d", "dr", "f", "fl", "g", "gr", "h", "k", "kr", "l", "m", "n", "p", "pr", "r", "s", "sk", "st", "t",
    "tr", "v", "z", "th", "sh", "qu", "c",
];
const NUCLEI: [&str; 12] = ["a", "e", "i", "o", "u", "a", "e", "o", "ae", "ei", "ou", "y"];
const GIVEN_ENDINGS: [&str; 12] = ["n", "r", "l", "s", "dek", "vin", "a", "o", "wen", "ra", "mis", "del"];
const FAMILY_ENDINGS: [&str; 12] =
    ["llian", "vek", "rov", "nard", "sley", "ssen", "rett", "mar", "dane", "vith", "dorn", "quell"];
const TOWN_ENDINGS: [&str; 12] =
    ["karra", "holm", "rby", "dor", "stead", "wick", "nova", "renn", "lith", "mere", "vach", "ston"];
const ORG_ENDINGS: [&str; 8] = ["nn", "r", "ss", "w", "x", "nd", "l", "th"];
const ORG_TYPES: [&str; 14] = [
    "Institute",
    "Company",
    "Society",
    "Foundation",
    "Bank",
    "Guild",
    "Museum",
    "Observatory",
    "Orchestra",
    "Brewery",
    "Press",
    "Academy",
    "Trading House",
    "Library",
];

impl NameGen {
    fn word(&mut self, rng: &mut Rng, endings: &[&str]) -> String {
        loop {
            let syllables = 1 + rng.index(2);
            let mut w = String::new();
            for _ in 0..syllables {
                w.push_str(ONSETS[rng.index(ONSETS.len())]);
                w.push_str(NUCLEI[rng.index(NUCLEI.len())]);
            }
            w.push_str(endings[rng.index(endings.len())]);
            if !(4..=10).contains(&w.len()) || self.used.contains(&w) {
                continue;
            }
            self.used.insert(w.clone());
            let mut chars = w.chars();
            let first = chars.next().map(|c| c.to_ascii_uppercase()).unwrap_or('X');
            return std::iter::once(first).chain(chars).collect();
        }
    }

    fn person(&mut self, rng: &mut Rng) -> (String, String) {
        let given = self.word(rng, &GIVEN_ENDINGS);
        let family = self.word(rng, &FAMILY_ENDINGS);
        (format!("{given} {family}"), family)
    }

    fn org(&mut self, rng: &mut Rng) -> String {
        let word = self.word(rng, &ORG_ENDINGS);
        format!("{word} {}", ORG_TYPES[rng.index(ORG_TYPES.len())])
    }

    fn town(&mut self, rng: &mut Rng) -> String {
        self.word(rng, &TOWN_ENDINGS)
    }
}

// ---------------------------------------------------------------------------------------------
// Values and relations

#[derive(Debug, Clone, Copy)]
enum Value {
    Year(i32),
    /// Day, month (0-based), year.
    Date(u32, usize, i32),
    Count(u32),
    Role(&'static str),
    Entity(usize),
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

const ROLES: [&str; 40] = [
    "cartographer",
    "glassblower",
    "clockmaker",
    "botanist",
    "shipwright",
    "astronomer",
    "surveyor",
    "bookbinder",
    "apothecary",
    "stonemason",
    "violinist",
    "engraver",
    "archivist",
    "chemist",
    "architect",
    "weaver",
    "translator",
    "lens grinder",
    "printer",
    "geologist",
    "physician",
    "cooper",
    "sculptor",
    "composer",
    "navigator",
    "potter",
    "brewer",
    "locksmith",
    "schoolteacher",
    "judge",
    "playwright",
    "engineer",
    "mathematician",
    "painter",
    "lawyer",
    "banker",
    "tailor",
    "blacksmith",
    "miller",
    "organ builder",
];

/// Kind of the value a relation points to, for generating it.
#[derive(Debug, Clone, Copy)]
enum ValueKind {
    BirthYear,
    DeathDate,
    Books,
    Role,
    FoundingYear,
    MeetingDate,
    Employees,
    Population,
    SettlementYear,
    FairDate,
    Person,
    Org,
    Town,
}

struct Relation {
    subject: Kind,
    value: ValueKind,
    statements: [&'static str; 10],
    questions: [&'static str; 3],
}

/// `{S}`: the subject; `{V}`: the value. Every statement holds `{V}` verbatim.
const RELATIONS: [Relation; 18] = [
    Relation {
        subject: Kind::Person,
        value: ValueKind::BirthYear,
        statements: [
            "{S} was born in {V}.",
            "Born in {V}, {S} grew up in modest circumstances.",
            "{S} came into the world in {V}.",
            "The year {V} saw the birth of {S}.",
            "Parish records show that {S} was born in {V}.",
            "{S}, born in {V}, was the eldest of four children.",
            "According to family letters, {S} was born in the winter of {V}.",
            "{S} was born in {V} to a family of modest means.",
            "It was in {V} that {S} was born.",
            "Records give {V} as the year of the birth of {S}.",
        ],
        questions: ["In what year was {S} born?", "When was {S} born?", "What year was {S} born in?"],
    },
    Relation {
        subject: Kind::Person,
        value: ValueKind::Town,
        statements: [
            "{S} was born in the town of {V}.",
            "{S} grew up in {V}, where the family kept a small shop.",
            "The birthplace of {S} was {V}.",
            "{S} was a native of {V}.",
            "Born in {V}, {S} left home at an early age.",
            "{S} spent a quiet childhood in {V}, the town of their birth.",
            "{V} is remembered as the hometown of {S}.",
            "{S} came from {V}, a town on the northern road.",
            "Local histories list {V} as the place where {S} was born.",
            "{S} was born and raised in {V}.",
        ],
        questions: ["Where was {S} born?", "In which town was {S} born?", "What is the hometown of {S}?"],
    },
    Relation {
        subject: Kind::Person,
        value: ValueKind::Role,
        statements: [
            "{S} worked as {V} for most of their life.",
            "By trade, {S} was {V}.",
            "{S} trained as {V}.",
            "{S} earned a living as {V}.",
            "Neighbours knew {S} as {V} of some skill.",
            "{S} became {V} after a long apprenticeship.",
            "For many years {S} was employed as {V}.",
            "{S} was {V} by profession.",
            "Most accounts describe {S} as {V}.",
            "{S} spent decades working as {V}.",
        ],
        questions: ["What was the profession of {S}?", "What did {S} work as?", "What was the trade of {S}?"],
    },
    Relation {
        subject: Kind::Person,
        value: ValueKind::Org,
        statements: [
            "{S} was employed by {V}.",
            "{S} joined {V} as a young apprentice.",
            "For over a decade, {S} worked at {V}.",
            "{S} held a post at {V}.",
            "{V} employed {S} for many years.",
            "{S} spent most of their career at {V}.",
            "{S} took a position with {V}.",
            "Colleagues at {V} remembered {S} fondly.",
            "{S} was on the staff of {V}.",
            "{S} found steady work at {V}.",
        ],
        questions: ["Which organisation employed {S}?", "Where did {S} work?", "For which organisation did {S} work?"],
    },
    Relation {
        subject: Kind::Person,
        value: ValueKind::Person,
        statements: [
            "{S} was trained by {V}.",
            "{S} studied under {V}.",
            "{V} was the mentor of {S}.",
            "{S} learned the craft from {V}.",
            "As a student, {S} was taught by {V}.",
            "{S} later credited {V} as their teacher.",
            "{S} was an apprentice of {V}.",
            "It was {V} who first taught {S}.",
            "{S} received early instruction from {V}.",
            "{S} named {V} as the mentor who shaped their work.",
        ],
        questions: ["Who was the mentor of {S}?", "Who taught {S}?", "Under whom did {S} study?"],
    },
    Relation {
        subject: Kind::Person,
        value: ValueKind::DeathDate,
        statements: [
            "{S} died on {V}.",
            "{S} passed away on {V}.",
            "On {V}, {S} died at home.",
            "The death of {S} came on {V}.",
            "The death of {S} was recorded on {V}.",
            "{S} died peacefully on {V}.",
            "{S} lived until {V}.",
            "{S} died suddenly on {V}.",
            "It was on {V} that {S} died.",
            "{S} died on {V} after a short illness.",
        ],
        questions: ["When did {S} die?", "On what date did {S} die?", "What was the date of the death of {S}?"],
    },
    Relation {
        subject: Kind::Person,
        value: ValueKind::Books,
        statements: [
            "{S} wrote {V} books.",
            "Over a long career, {S} published {V} books.",
            "{S} was the author of {V} books.",
            "In total, {S} completed {V} books.",
            "{V} books bear the name of {S} as their author.",
            "{S} left behind {V} books.",
            "{S} produced {V} books in all.",
            "The library holds all {V} books that {S} wrote.",
            "By the end of their life, {S} had written {V} books.",
            "{S} is credited with {V} books.",
        ],
        questions: [
            "How many books did {S} write?",
            "How many books did {S} publish?",
            "How many books is {S} credited with?",
        ],
    },
    Relation {
        subject: Kind::Org,
        value: ValueKind::FoundingYear,
        statements: [
            "{S} was founded in {V}.",
            "{S} was established in {V}.",
            "Founded in {V}, {S} began with only a handful of members.",
            "{S} opened its doors in {V}.",
            "The history of {S} begins in {V}.",
            "{S} dates back to {V}.",
            "{S} came into being in {V}.",
            "{S} was set up in {V}.",
            "It was in {V} that {S} was founded.",
            "{S} has existed since {V}.",
        ],
        questions: ["When was {S} founded?", "In what year was {S} established?", "What year was {S} founded in?"],
    },
    Relation {
        subject: Kind::Org,
        value: ValueKind::Person,
        statements: [
            "{S} was founded by {V}.",
            "{V} founded {S}.",
            "{S} was established by {V}.",
            "The founder of {S} was {V}.",
            "{V} set up {S} with money from a family inheritance.",
            "{S} owes its existence to {V}.",
            "{S} was the creation of {V}.",
            "{V} is remembered as the founder of {S}.",
            "It was {V} who established {S}.",
            "{S} was started by {V}.",
        ],
        questions: ["Who founded {S}?", "Who was the founder of {S}?", "Who established {S}?"],
    },
    Relation {
        subject: Kind::Org,
        value: ValueKind::Town,
        statements: [
            "{S} is based in {V}.",
            "{S} has its headquarters in {V}.",
            "The main offices of {S} are in {V}.",
            "{S} operates from a large building in {V}.",
            "{S} moved its headquarters to {V} early on.",
            "{V} is home to {S}.",
            "{S} keeps its head office in {V}.",
            "The headquarters of {S} stand in the centre of {V}.",
            "{S} is headquartered in {V}.",
            "Visitors to {V} can see the offices of {S}.",
        ],
        questions: ["Where is {S} based?", "Where is the headquarters of {S}?", "In which town is {S} headquartered?"],
    },
    Relation {
        subject: Kind::Org,
        value: ValueKind::Employees,
        statements: [
            "{S} employs {V} people.",
            "{S} has a staff of {V}.",
            "Today {S} employs {V} workers.",
            "{V} people work for {S}.",
            "{S} counts {V} employees.",
            "The workforce of {S} numbers {V}.",
            "{S} has {V} employees.",
            "{S} provides jobs for {V} people.",
            "According to its reports, {S} employs {V} staff.",
            "{S} now has {V} people on its payroll.",
        ],
        questions: [
            "How many people does {S} employ?",
            "How many employees does {S} have?",
            "How large is the staff of {S}?",
        ],
    },
    Relation {
        subject: Kind::Org,
        value: ValueKind::MeetingDate,
        statements: [
            "{S} held its first meeting on {V}.",
            "The first meeting of {S} took place on {V}.",
            "On {V}, {S} held its first meeting.",
            "{S} met for the first time on {V}.",
            "The members of {S} first gathered on {V}.",
            "{S} convened its first meeting on {V}.",
            "It was on {V} that {S} first met.",
            "Minutes of the first meeting of {S} are dated {V}.",
            "{S} called its first meeting on {V}.",
            "{S} gathered for its opening meeting on {V}.",
        ],
        questions: [
            "When did {S} hold its first meeting?",
            "On what date did {S} first meet?",
            "What was the date of the first meeting of {S}?",
        ],
    },
    Relation {
        subject: Kind::Org,
        value: ValueKind::Person,
        statements: [
            "{S} is led by {V}.",
            "The director of {S} is {V}.",
            "{V} directs {S}.",
            "{V} serves as director of {S}.",
            "{S} is run by its director, {V}.",
            "Since taking office, {V} has led {S}.",
            "{S} appointed {V} as its director.",
            "At the head of {S} stands {V}.",
            "{V} was named director of {S}.",
            "{S} is under the direction of {V}.",
        ],
        questions: ["Who is the director of {S}?", "Who leads {S}?", "Who directs {S}?"],
    },
    Relation {
        subject: Kind::Town,
        value: ValueKind::Population,
        statements: [
            "{S} has a population of {V}.",
            "{S} is home to {V} people.",
            "Some {V} people live in {S}.",
            "The last census counted {V} residents in {S}.",
            "{V} people live in {S}.",
            "{S} has {V} inhabitants.",
            "The population of {S} stands at {V}.",
            "{S} counts {V} residents.",
            "With {V} inhabitants, {S} is the largest town in its valley.",
            "{S} is a town of {V} people.",
        ],
        questions: [
            "What is the population of {S}?",
            "How many people live in {S}?",
            "How many inhabitants does {S} have?",
        ],
    },
    Relation {
        subject: Kind::Town,
        value: ValueKind::SettlementYear,
        statements: [
            "{S} was first settled in {V}.",
            "The first settlers arrived in {S} in {V}.",
            "{S} was founded in {V}.",
            "Settlement at {S} began in {V}.",
            "{S} dates from {V}.",
            "The earliest houses in {S} were built in {V}.",
            "Since {V}, people have lived in {S}.",
            "It was in {V} that {S} was first settled.",
            "{S} grew from a village first settled in {V}.",
            "Farmers settled the land around {S} in {V}.",
        ],
        questions: [
            "When was {S} first settled?",
            "In what year was {S} settled?",
            "When did settlement at {S} begin?",
        ],
    },
    Relation {
        subject: Kind::Town,
        value: ValueKind::Person,
        statements: [
            "The mayor of {S} is {V}.",
            "{V} is the mayor of {S}.",
            "{S} is governed by its mayor, {V}.",
            "{V} was elected mayor of {S}.",
            "{V} serves as mayor of {S}.",
            "{S} chose {V} as mayor.",
            "The town council of {S} is chaired by the mayor, {V}.",
            "{V} holds the office of mayor in {S}.",
            "As mayor, {V} runs the affairs of {S}.",
            "{S} re-elected {V} as mayor.",
        ],
        questions: ["Who is the mayor of {S}?", "Who was elected mayor of {S}?", "Who serves as mayor of {S}?"],
    },
    Relation {
        subject: Kind::Town,
        value: ValueKind::Town,
        statements: [
            "{S} is twinned with {V}.",
            "{S} has a twin town, {V}.",
            "The twin town of {S} is {V}.",
            "{S} and {V} are twin towns.",
            "{S} signed a twinning agreement with {V}.",
            "{V} is the twin town of {S}.",
            "{S} keeps close ties with its twin town, {V}.",
            "Every summer, {S} sends a delegation to its twin town, {V}.",
            "{S} was twinned with {V} after the war.",
            "Since the twinning, visitors from {V} come to {S} every year.",
        ],
        questions: [
            "Which town is {S} twinned with?",
            "What is the twin town of {S}?",
            "With which town is {S} twinned?",
        ],
    },
    Relation {
        subject: Kind::Town,
        value: ValueKind::FairDate,
        statements: [
            "{S} held its first market fair on {V}.",
            "The first market fair in {S} took place on {V}.",
            "On {V}, {S} held its first market fair.",
            "{S} opened its first market fair on {V}.",
            "Traders gathered for the first market fair of {S} on {V}.",
            "The market fair of {S} was first held on {V}.",
            "It was on {V} that {S} held its first market fair.",
            "{S} celebrated its first market fair on {V}.",
            "Crowds came to the first market fair in {S} on {V}.",
            "The first recorded market fair in {S} was on {V}.",
        ],
        questions: [
            "When did {S} hold its first market fair?",
            "On what date was the first market fair in {S}?",
            "What was the date of the first market fair in {S}?",
        ],
    },
];

/// Sentences that state no fact; `{S}` is the subject.
const FILLERS: [&str; 20] = [
    "Little is known about the early years of {S}.",
    "The surviving records from this period are incomplete.",
    "Several letters from the time are kept in a local archive.",
    "The winters in the region were long and often harsh.",
    "Historians still disagree about some of the details.",
    "Much of this account comes from a diary kept at the time.",
    "The story is told in a short pamphlet printed decades later.",
    "A faded photograph from the period hangs in a small gallery.",
    "{S} is still mentioned in guidebooks of the region.",
    "Few documents about {S} survived a fire in the archive.",
    "The roads in the area were poor, and travel was slow.",
    "A modest plaque marks the spot today.",
    "Visitors often ask about {S}, though answers are scarce.",
    "Local newspapers covered these events only briefly.",
    "The period was marked by poor harvests and rising prices.",
    "Some of the original buildings can still be seen.",
    "Later writers added colourful but doubtful details.",
    "This account follows the most reliable sources.",
    "Interest in {S} has grown again in recent years.",
    "A small exhibition about {S} was held last spring.",
];

/// Openers of distractor sentences (facts about other entities).
const CONNECTORS: [&str; 8] = [
    "Meanwhile, ",
    "By contrast, ",
    "Around the same time, ",
    "Nearby, ",
    "Elsewhere, ",
    "In a separate story, ",
    "On another note, ",
    "",
];

fn relations_of(kind: Kind) -> Vec<usize> {
    (0..RELATIONS.len()).filter(|&r| RELATIONS[r].subject == kind).collect()
}

fn with_commas(n: u32) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn a_or_an(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" }
}

/// Upper-cases the first character.
fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// "The Ostrenn Institute …" → "the Ostrenn Institute …", for use after a connector.
fn uncapitalise_article(s: &str) -> String {
    match s.strip_prefix("The ") {
        Some(rest) => format!("the {rest}"),
        None => s.to_string(),
    }
}

struct World {
    entities: Vec<Entity>,
}

impl World {
    /// The value as written in a statement.
    fn statement_text(&self, value: Value) -> String {
        match value {
            Value::Year(y) => y.to_string(),
            Value::Date(d, m, y) => format!("{d} {} {y}", MONTHS[m]),
            Value::Count(n) => with_commas(n),
            Value::Role(r) => format!("{} {r}", a_or_an(r)),
            Value::Entity(e) => self.entities[e].reference(),
        }
    }

    /// The value as a gold answer (a substring of [`World::statement_text`]).
    fn answer_text(&self, value: Value) -> String {
        match value {
            Value::Role(r) => r.to_string(),
            Value::Entity(e) => self.entities[e].name.clone(),
            other => self.statement_text(other),
        }
    }

    /// `template` with `{S}` and `{V}` filled in; capitalised as a sentence.
    fn render(&self, template: &str, subject: &str, value: Option<Value>) -> String {
        let mut s = template.replace("{S}", subject);
        if let Some(v) = value {
            s = s.replace("{V}", &self.statement_text(v));
        }
        capitalise(&s)
    }
}

fn pick<T: Copy>(rng: &mut Rng, items: &[T]) -> T {
    items[rng.index(items.len())]
}

/// A date `low..=high` years after `base`.
fn random_date(rng: &mut Rng, base: i32, low: i64, high: i64) -> Value {
    let year = base + rng.range_inclusive(low, high) as i32;
    Value::Date(1 + rng.index(28) as u32, rng.index(12), year)
}

/// A random entity of `kind` other than `not`.
fn other_entity(rng: &mut Rng, pool: &[usize], not: usize) -> usize {
    loop {
        let e = pick(rng, pool);
        if e != not || pool.len() == 1 {
            return e;
        }
    }
}

fn build_split(
    name: &'static str,
    n_docs: usize,
    config: &SynthConfig,
    rng: &mut Rng,
    names: &mut NameGen,
) -> SynthSplit {
    // Subjects: half people, 30% organisations, the rest towns; extra entities serve as objects.
    let n_people = n_docs / 2;
    let n_orgs = n_docs * 3 / 10;
    let n_towns = n_docs - n_people - n_orgs;
    let pool = |subjects: usize| subjects + subjects / 2 + 2;
    let mut entities = Vec::new();
    let mut people = Vec::new();
    let mut orgs = Vec::new();
    let mut towns = Vec::new();
    for _ in 0..pool(n_people) {
        let (name, family) = names.person(rng);
        people.push(entities.len());
        entities.push(Entity { kind: Kind::Person, name, short: family, facts: Vec::new() });
    }
    for _ in 0..pool(n_orgs) {
        let name = names.org(rng);
        let short = format!("the {name}");
        orgs.push(entities.len());
        entities.push(Entity { kind: Kind::Org, name, short, facts: Vec::new() });
    }
    for _ in 0..pool(n_towns) {
        let name = names.town(rng);
        towns.push(entities.len());
        entities.push(Entity { kind: Kind::Town, short: name.clone(), name, facts: Vec::new() });
    }

    // Facts of every entity; twin towns pair up symmetrically.
    let mut twin = vec![usize::MAX; entities.len()];
    for pair in towns.chunks(2) {
        if let [a, b] = *pair {
            twin[a] = b;
            twin[b] = a;
        } else {
            twin[pair[0]] = towns[0];
        }
    }
    for e in 0..entities.len() {
        let kind = entities[e].kind;
        let mut year = 0;
        let mut facts = Vec::new();
        for r in relations_of(kind) {
            let value = match RELATIONS[r].value {
                ValueKind::BirthYear => {
                    year = rng.range_inclusive(1700, 1900) as i32;
                    Value::Year(year)
                }
                ValueKind::DeathDate => random_date(rng, year, 35, 92),
                ValueKind::Books => Value::Count(rng.range_inclusive(2, 48) as u32),
                ValueKind::Role => Value::Role(pick(rng, &ROLES)),
                ValueKind::FoundingYear => {
                    year = rng.range_inclusive(1650, 1950) as i32;
                    Value::Year(year)
                }
                ValueKind::MeetingDate => random_date(rng, year, 0, 3),
                ValueKind::Employees => Value::Count(rng.range_inclusive(12, 9000) as u32),
                ValueKind::Population => Value::Count(rng.range_inclusive(800, 240_000) as u32),
                ValueKind::SettlementYear => {
                    year = rng.range_inclusive(1100, 1800) as i32;
                    Value::Year(year)
                }
                ValueKind::FairDate => random_date(rng, year, 20, 250),
                ValueKind::Person => Value::Entity(other_entity(rng, &people, e)),
                ValueKind::Org => Value::Entity(other_entity(rng, &orgs, e)),
                ValueKind::Town if kind == Kind::Town => Value::Entity(twin[e]),
                ValueKind::Town => Value::Entity(other_entity(rng, &towns, e)),
            };
            facts.push((r, value));
        }
        entities[e].facts = facts;
    }
    let world = World { entities };

    let mut subjects: Vec<usize> =
        people[..n_people].iter().chain(&orgs[..n_orgs]).chain(&towns[..n_towns]).copied().collect();
    rng.shuffle(&mut subjects);
    let all: Vec<usize> = (0..world.entities.len()).collect();
    let documents = subjects
        .iter()
        .enumerate()
        .map(|(i, &subject)| build_document(&world, name, i, subject, &all, config, rng))
        .collect();
    let entity_names = world.entities.iter().map(|e| e.name.clone()).collect();
    SynthSplit { name, documents, entity_names }
}

fn build_document(
    world: &World,
    split: &str,
    index: usize,
    subject: usize,
    all: &[usize],
    config: &SynthConfig,
    rng: &mut Rng,
) -> Document {
    let entity = &world.entities[subject];
    let (min, max) = config.facts_per_doc;
    let available = entity.facts.len();
    let n_facts = rng.range_inclusive(min.min(available) as i64, max.min(available) as i64) as usize;
    let chosen: Vec<usize> = rng.sample_indices(available, n_facts);

    let id = format!("{split}-{index:04}");
    let full = entity.reference();
    let mut questions = Vec::with_capacity(n_facts);
    let mut fact_sentences = Vec::with_capacity(n_facts);
    for (k, &f) in chosen.iter().enumerate() {
        let (r, value) = entity.facts[f];
        let relation = &RELATIONS[r];
        // The first sentence names the subject in full; later ones may use the short form.
        let reference = if k == 0 || rng.bernoulli(0.5) { &full } else { &entity.short };
        fact_sentences.push(world.render(pick(rng, &relation.statements), reference, Some(value)));
        let question = world.render(pick(rng, &relation.questions), &full, None);
        let mut q = Question::new(question, vec![world.answer_text(value)]);
        q.id = Some(format!("{id}-q{k}"));
        questions.push(q);
    }

    let mut others = Vec::new();
    // Distinct fillers while there are enough of them.
    let mut fillers = Vec::new();
    while fillers.len() < config.filler_sentences {
        let wanted = (config.filler_sentences - fillers.len()).min(FILLERS.len());
        fillers.extend(rng.sample_indices(FILLERS.len(), wanted));
    }
    for f in fillers {
        others.push(world.render(FILLERS[f], &full, None));
    }
    for _ in 0..config.distractor_sentences {
        let other = &world.entities[other_entity(rng, all, subject)];
        let (r, value) = other.facts[rng.index(other.facts.len())];
        let template = pick(rng, &RELATIONS[r].statements);
        let sentence = world.render(template, &other.reference(), Some(value));
        // A connector only before a sentence that opens with a name ("Meanwhile, Ilvo Marn …").
        let connector = pick(rng, &CONNECTORS);
        let sentence = if template.starts_with('{') {
            format!("{connector}{}", uncapitalise_article(&sentence))
        } else {
            sentence
        };
        others.push(capitalise(&sentence));
    }

    // The first fact opens the document; the rest and the other sentences are interleaved.
    let mut rest: Vec<String> = fact_sentences.split_off(1.min(fact_sentences.len()));
    rest.extend(others);
    rng.shuffle(&mut rest);
    let text = fact_sentences.into_iter().chain(rest).collect::<Vec<_>>().join(" ");

    let mut document = Document::new(id, text);
    document.title = Some(entity.name.clone());
    document.questions = questions;
    document
}

// ---------------------------------------------------------------------------------------------
// Unrelated text

const GENERIC: [&str; 40] = [
    "Bread rises best in a warm kitchen, away from open windows.",
    "Most gardeners water their plants early in the morning.",
    "A good pair of boots can last for many years with some care.",
    "The bus was late again, so many people decided to walk.",
    "Tomatoes need plenty of sunlight and regular watering.",
    "Children often learn to ride a bicycle in a single afternoon.",
    "The recipe calls for two cups of flour and a pinch of salt.",
    "Heavy rain is expected across the region later this week.",
    "Many people prefer tea in the afternoon and coffee in the morning.",
    "The library extended its opening hours during the exam season.",
    "A short walk after dinner can help with sleep.",
    "Old houses are often cold in winter and cool in summer.",
    "The market sells fresh fish on most weekday mornings.",
    "Painting a room usually takes longer than people expect.",
    "Dogs need regular exercise to stay healthy and calm.",
    "The train to the coast is busiest on Friday evenings.",
    "Soup tastes better on the second day, according to many cooks.",
    "A sharp knife is safer than a dull one in the kitchen.",
    "The wind picked up in the evening and rattled the windows.",
    "Students were asked to read two chapters before the next class.",
    "Fresh herbs lose their flavour quickly once they are cut.",
    "The park is quiet on weekday mornings and crowded at weekends.",
    "Clean gutters help to keep water away from the walls of a house.",
    "Many birds fly south when the days grow shorter.",
    "The committee agreed to meet again next month.",
    "A map and a compass are still useful on long hikes.",
    "Laundry dries quickly on a sunny and windy day.",
    "The shop closes early on public holidays.",
    "Apples keep for months in a cool and dark cellar.",
    "Good lighting makes reading much less tiring.",
    "The river was high after a week of steady rain.",
    "Most cats sleep for a large part of the day.",
    "A simple salad needs only good oil, salt and fresh leaves.",
    "The football match was stopped for a few minutes because of fog.",
    "Writing a list before shopping saves both time and money.",
    "The kettle takes about three minutes to boil.",
    "Winter coats are usually on sale at the end of the season.",
    "The school play was performed twice to full audiences.",
    "Careful drivers slow down when the road is wet.",
    "A cup of warm milk is an old remedy for sleeplessness.",
];

fn unrelated_text(paragraphs: usize, rng: &mut Rng) -> String {
    let mut out = String::new();
    for p in 0..paragraphs {
        if p > 0 {
            out.push_str("\n\n");
        }
        let n = 4 + rng.index(4);
        let sentences: Vec<&str> = rng.sample_indices(GENERIC.len(), n).into_iter().map(|i| GENERIC[i]).collect();
        out.push_str(&sentences.join(" "));
    }
    out.push('\n');
    out
}
