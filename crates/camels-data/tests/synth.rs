//! The synthetic fact world: determinism, disjoint splits, answers in their documents, sizes.

mod common;

use std::collections::HashSet;

use camels_data::{SynthConfig, TextEncoder, generate_world, jsonl, write_world};

fn small(seed: u64) -> SynthConfig {
    SynthConfig {
        seed,
        n_pretrain: 120,
        n_meta_train: 40,
        n_meta_val: 20,
        n_test: 30,
        unrelated_paragraphs: 20,
        ..SynthConfig::default()
    }
}

fn read_all(dir: &std::path::Path) -> Vec<Vec<u8>> {
    ["pretrain.jsonl", "meta_train.jsonl", "meta_val.jsonl", "test.jsonl", "unrelated.txt"]
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect()
}

#[test]
fn same_seed_writes_identical_files_and_another_seed_different_ones() {
    let (a, b, c) = (common::scratch("synth-a"), common::scratch("synth-b"), common::scratch("synth-c"));
    let (_, written) = write_world(&a, &small(7)).unwrap();
    assert_eq!(written.len(), 5);
    write_world(&b, &small(7)).unwrap();
    write_world(&c, &small(8)).unwrap();
    let (fa, fb, fc) = (read_all(&a), read_all(&b), read_all(&c));
    assert_eq!(fa, fb);
    for i in 0..4 {
        assert_ne!(fa[i], fc[i], "split {i} does not depend on the seed");
    }
    // The files are valid JSONL that reads back into the generated documents.
    let world = generate_world(&small(7)).unwrap();
    let test = jsonl::read(&a.join("test.jsonl"), true).unwrap();
    assert_eq!(test.documents, world.test.documents);
    for dir in [a, b, c] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn test_world_does_not_depend_on_the_other_split_sizes() {
    let a = generate_world(&small(3)).unwrap();
    let b = generate_world(&SynthConfig { n_pretrain: 10, n_meta_train: 5, ..small(3) }).unwrap();
    assert_eq!(a.test, b.test);
    assert_eq!(a.meta_val, b.meta_val);
}

#[test]
fn splits_share_no_entity_and_no_name_word() {
    let world = generate_world(&small(11)).unwrap();
    let splits = world.splits();
    let words = |names: &[String]| -> HashSet<String> {
        names
            .iter()
            .flat_map(|n| n.split(' ').map(str::to_string).collect::<Vec<_>>())
            .filter(|w| w.chars().next().is_some_and(char::is_uppercase))
            .collect()
    };
    for i in 0..4 {
        for j in i + 1..4 {
            let (a, b) = (splits[i], splits[j]);
            let names_a: HashSet<&String> = a.entity_names.iter().collect();
            assert!(b.entity_names.iter().all(|n| !names_a.contains(n)), "{} and {} share an entity", a.name, b.name);
            // Name words (organisation types such as "Institute" aside) are not shared either.
            let org_types = [
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
                "Trading",
                "House",
                "Library",
            ];
            let shared: Vec<String> = words(&a.entity_names)
                .intersection(&words(&b.entity_names))
                .filter(|w| !org_types.contains(&w.as_str()))
                .cloned()
                .collect();
            assert!(shared.is_empty(), "{} and {} share name words {shared:?}", a.name, b.name);
        }
    }
    // No test-world entity is ever mentioned in the pre-training text.
    let pretrain_text: String = world.pretrain.documents.iter().map(|d| d.text.as_str()).collect();
    for name in &world.test.entity_names {
        assert!(!pretrain_text.contains(name.as_str()), "{name} leaks into pretrain");
    }
    for name in world.splits().iter().flat_map(|s| s.entity_names.iter()) {
        assert!(!world.unrelated.contains(name.as_str()));
    }
}

#[test]
fn every_answer_appears_in_its_document_and_sizes_follow_the_knobs() {
    let config = SynthConfig { facts_per_doc: (2, 4), filler_sentences: 3, distractor_sentences: 2, ..small(5) };
    let world = generate_world(&config).unwrap();
    let sizes: Vec<usize> = world.splits().iter().map(|s| s.documents.len()).collect();
    assert_eq!(sizes, vec![120, 40, 20, 30]);
    let mut ids = HashSet::new();
    for split in world.splits() {
        for d in &split.documents {
            assert!(ids.insert(d.id.clone()), "duplicate id {}", d.id);
            assert!((2..=4).contains(&d.questions.len()), "{}: {} questions", d.id, d.questions.len());
            let spans = d.answer_spans();
            assert!(!spans.is_empty());
            for q in &d.questions {
                assert_eq!(q.answers.len(), 1);
                assert!(d.text.contains(&q.answers[0]), "{}: {:?} not in {:?}", d.id, q.answers[0], d.text);
                assert!(q.question.ends_with('?'));
                assert!(!q.question.contains(&q.answers[0]), "question gives its answer away: {}", q.question);
            }
            let sentences = d.text.matches(". ").count() + 1;
            assert_eq!(sentences, d.questions.len() + 3 + 2, "{}", d.text);
            assert!(d.title.is_some());
        }
    }
    let paragraphs = world.unrelated.trim_end().split("\n\n").count();
    assert_eq!(paragraphs, 20);
    let bad = generate_world(&SynthConfig { facts_per_doc: (4, 2), ..small(5) }).unwrap_err();
    assert!(bad.to_string().contains("invalid facts_per_doc"));
}

#[test]
fn default_documents_are_60_to_120_gpt2_tokens() {
    let tokenizer = common::gpt2();
    let config = SynthConfig::default();
    let world = generate_world(&SynthConfig { n_pretrain: 100, n_meta_train: 0, n_meta_val: 0, n_test: 100, ..config })
        .unwrap();
    let lengths: Vec<usize> = world
        .test
        .documents
        .iter()
        .chain(&world.pretrain.documents)
        .map(|d| TextEncoder::encode(&tokenizer, &d.text).unwrap().ids.len())
        .collect();
    let mean = lengths.iter().sum::<usize>() as f64 / lengths.len() as f64;
    let inside = lengths.iter().filter(|&&n| (50..=130).contains(&n)).count();
    assert!((60.0..=120.0).contains(&mean), "mean {mean}");
    assert!(inside * 100 >= lengths.len() * 90, "only {inside} of {} in 50..=130: {lengths:?}", lengths.len());
}
