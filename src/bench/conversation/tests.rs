use super::*;
use crate::bench::{Measurement, ServerTimings};

fn plan(conversations: usize, turns: usize, prompt_tokens: usize, seed: u64) -> ConversationPlan {
    ConversationPlan {
        conversations,
        turns,
        rate: None,
        think: Duration::ZERO,
        prompt_tokens,
        seed,
    }
}

#[test]
fn without_a_rate_all_start_at_once() {
    assert_eq!(arrivals(5, None, 7), vec![Duration::ZERO; 5]);
    assert!(arrivals(0, Some(1.0), 7).is_empty());
}

#[test]
fn arrivals_are_seeded_and_their_gaps_average_one_over_the_rate() {
    let rate = 4.0;
    let n = 20_000;
    let a = arrivals(n, Some(rate), 1);
    assert_eq!(a, arrivals(n, Some(rate), 1), "same seed, same schedule");
    assert_ne!(
        a,
        arrivals(n, Some(rate), 2),
        "another seed, another schedule"
    );
    assert_eq!(a[0], Duration::ZERO, "the first starts at once");
    let gaps: Vec<f64> = a.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
    assert!(gaps.iter().all(|g| *g >= 0.0));
    let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
    assert!(
        (mean - 1.0 / rate).abs() < 0.02 * (1.0 / rate),
        "mean gap {mean}"
    );
    // Exponential, not evenly spaced: its standard deviation equals its mean.
    let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
    assert!((var.sqrt() / mean - 1.0).abs() < 0.05, "sd {}", var.sqrt());
}

#[test]
fn message_lengths_stay_within_half_of_their_means() {
    // Words are about tokens: the first message about --prompt-tokens, later ones a quarter.
    let p = plan(400, 4, 64, 3);
    let mut first = Vec::new();
    let mut later = Vec::new();
    for index in 0..p.conversations {
        let messages = user_messages(&p, index);
        assert_eq!(messages.len(), 4);
        first.push(messages[0].split(' ').count());
        later.extend(messages[1..].iter().map(|m| m.split(' ').count()));
    }
    let bounds = |v: &[usize]| (*v.iter().min().unwrap(), *v.iter().max().unwrap());
    let mean = |v: &[usize]| v.iter().sum::<usize>() as f64 / v.len() as f64;
    assert_eq!(bounds(&first), (32, 96), "the draws reach both ends");
    assert_eq!(bounds(&later), (8, 24));
    assert!((mean(&first) - 64.0).abs() < 3.0, "{}", mean(&first));
    assert!((mean(&later) - 16.0).abs() < 1.0, "{}", mean(&later));
    // Tiny means still give at least the opening tag, and a word a later turn.
    let tiny = user_messages(&plan(1, 2, 1, 0), 0);
    assert_eq!(tiny, ["the 0:".to_owned(), tiny[1].clone()]);
    assert_eq!(tiny[1].split(' ').count(), 1);
}

#[test]
fn conversations_are_deterministic_and_distinct_from_the_first_word() {
    let p = plan(WORDS.len() + 5, 3, 32, 9);
    let all: Vec<Vec<String>> = (0..p.conversations).map(|i| user_messages(&p, i)).collect();
    assert_eq!(all[3], user_messages(&p, 3), "deterministic");
    let reseeded = ConversationPlan {
        seed: 10,
        ..p.clone()
    };
    assert_ne!(
        all[3],
        user_messages(&reseeded, 3),
        "the seed picks the words"
    );
    let first_word = |m: &str| m.split(' ').next().unwrap().to_owned();
    let tag = |m: &str| m[..=m.find(':').unwrap()].to_owned();
    for (i, a) in all.iter().enumerate() {
        for (j, b) in all.iter().enumerate().skip(i + 1) {
            assert_ne!(a[0], b[0], "{i} {j}");
            if j < WORDS.len() {
                assert_ne!(first_word(&a[0]), first_word(&b[0]), "{i} {j}");
            }
            // Beyond the words, the index tells them apart from the second word.
            assert!(!b[0].starts_with(&tag(&a[0])), "{i} {j}");
        }
    }
}

#[test]
fn chat_history_grows_with_the_answers_and_the_next_message() {
    let p = plan(2, 3, 16, 0);
    let user = user_messages(&p, 1);
    let mut c = Conversation::new(&p, 1);
    let messages = |c: &Conversation| match c.prompt(Endpoint::Chat) {
        Prompt::Messages(m) => m,
        other => panic!("{other:?}"),
    };
    assert_eq!(messages(&c), [json!({"role": "user", "content": user[0]})]);
    c.answered("first answer".to_owned());
    let second = messages(&c);
    assert_eq!(
        second,
        [
            json!({"role": "user", "content": user[0]}),
            json!({"role": "assistant", "content": "first answer"}),
            json!({"role": "user", "content": user[1]}),
        ]
    );
    c.answered(" second".to_owned());
    let third = messages(&c);
    assert_eq!(third.len(), 5);
    assert_eq!(&third[..3], &second[..], "the history is resent unchanged");
    assert_eq!(third[3], json!({"role": "assistant", "content": " second"}));
    assert_eq!(third[4], json!({"role": "user", "content": user[2]}));
    assert_eq!((c.turn(), c.turns()), (2, 3));
}

#[test]
fn completion_prompt_grows_by_the_answer_and_the_next_message() {
    let p = plan(1, 3, 16, 0);
    let user = user_messages(&p, 0);
    let mut c = Conversation::new(&p, 0);
    let text = |c: &Conversation| match c.prompt(Endpoint::Completion) {
        Prompt::Text(t) => t,
        other => panic!("{other:?}"),
    };
    let first = text(&c);
    assert_eq!(first, format!("User: {}\nAssistant:", user[0]));
    c.answered(" Sure.".to_owned());
    let second = text(&c);
    assert_eq!(
        second,
        format!("{first} Sure.\nUser: {}\nAssistant:", user[1]),
        "the answer continues where it was generated"
    );
    c.answered(" Again".to_owned());
    assert!(text(&c).starts_with(&format!("{second} Again\nUser: {}", user[2])));
}

fn turn(conversation: usize, turn: usize, result: Result<(u64, u64), &str>) -> Turn {
    let result = result
        .map(|(prompt, cached)| Measurement {
            ttft: None,
            chunk_gaps: Vec::new(),
            output_tokens: 1,
            prompt_tokens: Some(prompt),
            cached_tokens: Some(cached),
            timings: None,
        })
        .map_err(str::to_owned);
    Turn {
        conversation,
        turn,
        outcome: Outcome {
            latency: Duration::from_millis(1),
            result,
        },
    }
}

#[test]
fn cached_share_counts_later_turns_only() {
    let p = plan(3, 3, 16, 0);
    let mut timings_only = turn(2, 1, Ok((0, 0)));
    if let Ok(m) = &mut timings_only.outcome.result {
        // A server without usage: the prompt is timings' cached and evaluated tokens.
        m.prompt_tokens = None;
        m.cached_tokens = Some(30);
        m.timings = Some(ServerTimings {
            cache_n: 30,
            prompt_n: 10,
            ..ServerTimings::default()
        });
    }
    let turns = [
        turn(0, 0, Ok((50, 0))),
        turn(0, 1, Ok((100, 80))),
        turn(0, 2, Ok((150, 140))),
        turn(1, 0, Ok((50, 40))),
        turn(1, 1, Err("HTTP 500: boom")),
        turn(1, 2, Err(run::NOT_SENT)),
        turn(2, 0, Ok((50, 0))),
        timings_only,
        turn(2, 2, Err("HTTP 500: late")),
    ];
    let s = summarize_conversations(&p, &turns);
    assert_eq!((s.conversations, s.turns), (3, 3));
    assert_eq!(s.cut_short, 1, "a failed last turn cuts nothing short");
    assert_eq!(s.later_turns_prompt_tokens, 100 + 150 + 40);
    assert_eq!(s.later_turns_cached_tokens, 80 + 140 + 30);
    assert!((s.later_turns_cached_share.unwrap() - 250.0 / 290.0).abs() < 1e-12);
    // Only first turns, or no server statement: no share.
    let none = summarize_conversations(&p, &turns[..1]);
    assert_eq!(none.later_turns_cached_share, None);
}
