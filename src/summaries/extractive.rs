//! The default engine: extractive summaries by TextRank over a channel's
//! sentences. Language-agnostic: tokens are runs of Unicode letters and digits,
//! lower-cased, and each CJK character is a token of its own (those scripts put
//! no spaces between words); common words weigh little through IDF, so no
//! per-language stop-word list is needed. Deterministic: fixed iterations, ties
//! broken by position. The chosen sentences come back in conversation order.

use std::collections::HashMap;

/// One sentence of the conversation, with where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Sentence {
    pub message: usize,
    pub text: String,
}

fn is_cjk(c: char) -> bool {
    matches!(
        c as u32,
        0x3040..=0x30ff | 0x3400..=0x4dbf | 0x4e00..=0x9fff | 0xac00..=0xd7af | 0xf900..=0xfaff
    )
}

/// Lower-cased tokens of `text`.
pub fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if is_cjk(c) {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            out.push(c.to_string());
        } else if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
        } else if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// Splits messages into sentences (at `.`, `!`, `?`, their CJK forms and line breaks).
pub fn sentences(messages: &[String]) -> Vec<Sentence> {
    let mut out = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let mut current = String::new();
        let mut chars = message.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\n' {
                push(&mut out, i, &mut current);
                continue;
            }
            current.push(c);
            let ends = matches!(c, '。' | '！' | '？')
                || (matches!(c, '.' | '!' | '?') && chars.peek().is_none_or(|n| n.is_whitespace()));
            if ends {
                push(&mut out, i, &mut current);
            }
        }
        push(&mut out, i, &mut current);
    }
    out
}

fn push(out: &mut Vec<Sentence>, message: usize, current: &mut String) {
    let text = current.trim();
    if !text.is_empty() {
        out.push(Sentence {
            message,
            text: text.to_owned(),
        });
    }
    current.clear();
}

/// The indexes (into `sentences`) of the `k` most central sentences, in order.
pub fn rank(sentences: &[Sentence], k: usize) -> Vec<usize> {
    let docs: Vec<Vec<String>> = sentences.iter().map(|s| tokens(&s.text)).collect();
    let n = docs.len();
    let mut df: HashMap<&str, usize> = HashMap::new();
    for doc in &docs {
        let mut seen: Vec<&str> = doc.iter().map(String::as_str).collect();
        seen.sort_unstable();
        seen.dedup();
        for t in seen {
            *df.entry(t).or_default() += 1;
        }
    }
    // TF-IDF vectors, as sorted (token, weight) lists for a deterministic dot product.
    let vectors: Vec<Vec<(&str, f64)>> = docs
        .iter()
        .map(|doc| {
            let mut tf: HashMap<&str, f64> = HashMap::new();
            for t in doc {
                *tf.entry(t.as_str()).or_default() += 1.0;
            }
            let mut v: Vec<(&str, f64)> = tf
                .into_iter()
                .map(|(t, f)| (t, f * ((1.0 + n as f64) / (1.0 + df[t] as f64)).ln()))
                .collect();
            v.sort_by(|a, b| a.0.cmp(b.0));
            v
        })
        .collect();
    let norms: Vec<f64> = vectors
        .iter()
        .map(|v| v.iter().map(|(_, w)| w * w).sum::<f64>().sqrt())
        .collect();
    let mut sim = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in (i + 1)..n {
            if norms[i] == 0.0 || norms[j] == 0.0 {
                continue;
            }
            let s = dot(&vectors[i], &vectors[j]) / (norms[i] * norms[j]);
            sim[i][j] = s;
            sim[j][i] = s;
        }
    }
    let out_weight: Vec<f64> = sim.iter().map(|row| row.iter().sum()).collect();
    let mut score = vec![1.0; n];
    for _ in 0..50 {
        let next: Vec<f64> = (0..n)
            .map(|i| {
                let incoming: f64 = (0..n)
                    .filter(|&j| out_weight[j] > 0.0)
                    .map(|j| sim[j][i] / out_weight[j] * score[j])
                    .sum();
                0.15 + 0.85 * incoming
            })
            .collect();
        score = next;
    }
    // Very short sentences ("ok", "thanks!") carry no content: ranked last.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| {
        let short = |i: usize| docs[i].len() < 3;
        short(a)
            .cmp(&short(b))
            .then(score[b].total_cmp(&score[a]))
            .then(a.cmp(&b))
    });
    let mut chosen: Vec<usize> = order.into_iter().take(k).collect();
    chosen.sort_unstable();
    chosen
}

fn dot(a: &[(&str, f64)], b: &[(&str, f64)]) -> f64 {
    let (mut i, mut j, mut sum) = (0, 0, 0.0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(b[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                sum += a[i].1 * b[j].1;
                i += 1;
                j += 1;
            }
        }
    }
    sum
}

/// The summary of `messages`: at most `k` sentences, in conversation order, and
/// the number of tokens read (what the AI ledger is charged).
pub fn summarise(messages: &[String], k: usize) -> (Vec<Sentence>, u64) {
    let all = sentences(messages);
    let read = messages.iter().map(|m| tokens(m).len() as u64).sum();
    let chosen = rank(&all, k).into_iter().map(|i| all[i].clone()).collect();
    (chosen, read)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conversation() -> Vec<String> {
        [
            "Morning all!",
            "The database migration for the billing service is scheduled for Thursday night.",
            "ok",
            "Who owns the rollback plan for the billing migration? We need one before Thursday.",
            "I can write the rollback plan for the billing database migration today.",
            "lunch anyone?",
            "Thanks. Please also check that the billing service alerts page \
             the on-call during the migration.",
            "Sure, I will add the migration alerts to the on-call runbook.",
            "🎉",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    #[test]
    fn picks_the_central_sentences_in_conversation_order() {
        let (summary, read) = summarise(&conversation(), 3);
        assert_eq!(summary.len(), 3);
        assert!(read > 50);
        let messages: Vec<usize> = summary.iter().map(|s| s.message).collect();
        assert!(
            messages.windows(2).all(|w| w[0] <= w[1]),
            "in order: {messages:?}"
        );
        for s in &summary {
            assert!(
                s.text.to_lowercase().contains("migration"),
                "off topic: {}",
                s.text
            );
        }
        // Chit-chat never makes it.
        let chit_chat = ["ok", "lunch anyone?", "Morning all!", "🎉"];
        assert!(
            summary
                .iter()
                .all(|s| !chit_chat.contains(&s.text.as_str()))
        );
    }

    #[test]
    fn is_deterministic_and_covers_what_is_asked() {
        let a = summarise(&conversation(), 4);
        let b = summarise(&conversation(), 4);
        assert_eq!(a, b);
        let (all, _) = summarise(&conversation(), 100);
        assert_eq!(
            all.len(),
            sentences(&conversation()).len(),
            "k above the count returns all"
        );
        assert!(summarise(&[], 3).0.is_empty());
    }

    #[test]
    fn tokenises_any_script() {
        assert_eq!(tokens("Größe: 42 Äpfel!"), ["größe", "42", "äpfel"]);
        assert_eq!(tokens("東京で会議"), ["東", "京", "で", "会", "議"]);
        assert_eq!(tokens("Привет, мир"), ["привет", "мир"]);
        let s = sentences(&[
            "Erste Zeile. Zweite Zeile!\nDritte 3.5 Zeile".into(),
            "会議は明日です。資料を送ります。".into(),
        ]);
        let texts: Vec<&str> = s.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Erste Zeile.",
                "Zweite Zeile!",
                "Dritte 3.5 Zeile",
                "会議は明日です。",
                "資料を送ります。"
            ]
        );
    }

    #[test]
    fn summarises_a_german_thread_without_a_word_list() {
        let thread: Vec<String> = [
            "Hallo zusammen.",
            "Das Release der neuen Suchfunktion verschiebt sich auf Montag.",
            "Warum verschiebt sich das Release der Suchfunktion?",
            "Die Tests der Suchfunktion sind auf dem Staging-Server noch rot.",
            "Danke!",
        ]
        .map(str::to_owned)
        .to_vec();
        let (summary, _) = summarise(&thread, 2);
        assert!(
            summary.iter().all(|s| s.text.contains("Suchfunktion")),
            "{summary:?}"
        );
    }
}
