//! The host prompt cache (llama-server's `--cache-ram`): KV states that no slot holds any more,
//! kept in host memory with their tokens, so that a request whose prompt starts like one of them
//! restores it instead of computing it again. Plain data: the worker reads and writes the states
//! (`llama/state.rs`); this decides what is kept, what is evicted, and which entry a prompt
//! restores, as llama-server's `server_prompt_cache` does.

use std::collections::VecDeque;

use llama_cpp_2::token::LlamaToken;

use super::checkpoint::Checkpoints;
use super::slot::common_prefix;

/// A cached state: the tokens whose cells it holds and the LoRA scales they were computed with.
#[derive(Debug)]
pub struct Entry {
    pub tokens: Vec<LlamaToken>,
    /// One scale per loaded adapter (empty without adapters).
    pub lora: Vec<f32>,
    pub state: Vec<u8>,
    /// The slot's context checkpoints, which go back with the state.
    pub checkpoints: Checkpoints,
}

impl Entry {
    /// Host memory it takes: the state and the checkpoints.
    fn bytes(&self) -> usize {
        self.state.len() + self.checkpoints.bytes()
    }
}

/// The entries, oldest first: eviction takes the front, a restore takes its entry out, and the
/// slot's state comes back at the end when it is saved again.
#[derive(Debug)]
pub struct PromptCache {
    /// The most bytes of state held; `None`: no limit (`--cache-ram -1`).
    limit_bytes: Option<usize>,
    /// The most tokens held, raised to what the byte limit holds at the current bytes per
    /// token (llama-server sizes it to the context).
    limit_tokens: usize,
    entries: VecDeque<Entry>,
    /// The entries' state bytes and tokens, kept with them (eviction checks them per entry).
    bytes: usize,
    n_tokens: usize,
}

/// An entry may be restored only if the prompt keeps at least this fraction of its tokens
/// (llama-server's "don't trash large prompts").
const MIN_KEEP: f32 = 0.25;

impl PromptCache {
    /// A cache of `limit_mib` MiB (`-1`: no limit) and `limit_tokens` tokens; `None` for
    /// `limit_mib == 0`, which turns it off.
    pub fn new(limit_mib: i64, limit_tokens: usize) -> Option<Self> {
        let limit_bytes = match limit_mib {
            0 => return None,
            n if n < 0 => None,
            n => Some(
                usize::try_from(n)
                    .unwrap_or(usize::MAX)
                    .saturating_mul(1 << 20),
            ),
        };
        Some(Self {
            limit_bytes,
            limit_tokens,
            entries: VecDeque::new(),
            bytes: 0,
            n_tokens: 0,
        })
    }

    /// Keeps the state of `tokens` (computed with `lora`, with `checkpoints`) unless an entry
    /// already holds all of them or it is over the limit by itself: entries it contains go,
    /// then the oldest until it fits, and only then is `read` called for the `size` bytes.
    /// False if nothing was kept.
    pub fn store(
        &mut self,
        tokens: &[LlamaToken],
        lora: &[f32],
        checkpoints: &Checkpoints,
        size: usize,
        read: impl FnOnce() -> Option<Vec<u8>>,
    ) -> bool {
        if tokens.is_empty() || self.holds(tokens, lora) {
            return false;
        }
        let size = size + checkpoints.bytes();
        if self.limit_bytes.is_some_and(|limit| size > limit) {
            tracing::warn!(
                size_mib = size >> 20,
                limit_mib = self.limit_bytes.unwrap_or(0) >> 20,
                "a prompt state is larger than --cache-ram by itself: not cached"
            );
            return false;
        }
        // Entries it contains go, with their share of the totals.
        let (bytes, n_tokens) = (&mut self.bytes, &mut self.n_tokens);
        self.entries.retain(|e| {
            let contained = e.lora == lora && common_prefix(&e.tokens, tokens) == e.tokens.len();
            if contained {
                *bytes -= e.bytes();
                *n_tokens -= e.tokens.len();
            }
            !contained
        });
        if let Some(limit) = self.limit_bytes {
            while !self.entries.is_empty() && self.bytes + size > limit {
                self.remove(0);
            }
        }
        let Some(state) = read() else {
            return false;
        };
        let entry = Entry {
            tokens: tokens.to_vec(),
            lora: lora.to_vec(),
            state,
            checkpoints: checkpoints.clone(),
        };
        self.push(entry);
        true
    }

    /// Takes out the entry a slot holding `held` should restore for `prompt` (computed with
    /// `lora`): the one that keeps the largest fraction of itself and of the prompt, if that
    /// beats what the slot holds and keeps at least a quarter of the entry.
    pub fn take_best(
        &mut self,
        held: &[LlamaToken],
        prompt: &[LlamaToken],
        lora: &[f32],
    ) -> Option<Entry> {
        let fraction = |n: usize, of: usize| if of == 0 { 0.0 } else { n as f32 / of as f32 };
        let lcp = common_prefix(held, prompt);
        // An empty slot keeps nothing: any entry beats it.
        let mut keep_best = if held.is_empty() {
            -1.0
        } else {
            fraction(lcp, held.len())
        };
        let mut sim_best = fraction(lcp, prompt.len());
        let mut best = None;
        for (i, entry) in self.entries.iter().enumerate() {
            if entry.lora != lora {
                continue;
            }
            let lcp = common_prefix(&entry.tokens, prompt);
            let keep = fraction(lcp, entry.tokens.len());
            let sim = fraction(lcp, prompt.len());
            if keep >= MIN_KEEP && keep > keep_best && sim > sim_best {
                (keep_best, sim_best, best) = (keep, sim, Some(i));
            }
        }
        self.remove(best?)
    }

    /// Puts back an entry that `take_best` gave out and that could not be restored (no room
    /// in the KV cache): llama-server keeps such an entry too. It goes back as the newest,
    /// since a prompt has just asked for it; the limits then apply as to a new one.
    pub fn put_back(&mut self, entry: Entry) {
        self.push(entry);
    }

    /// Adds `entry` as the newest, with its bytes and tokens, then applies the limits.
    fn push(&mut self, entry: Entry) {
        self.bytes += entry.bytes();
        self.n_tokens += entry.tokens.len();
        self.entries.push_back(entry);
        self.evict();
    }

    /// Takes entry `i` out, with its bytes and tokens.
    fn remove(&mut self, i: usize) -> Option<Entry> {
        let entry = self.entries.remove(i)?;
        self.bytes -= entry.bytes();
        self.n_tokens -= entry.tokens.len();
        Some(entry)
    }

    /// Whether an entry computed with `lora` starts with all of `tokens`.
    fn holds(&self, tokens: &[LlamaToken], lora: &[f32]) -> bool {
        self.entries
            .iter()
            .any(|e| e.lora == lora && common_prefix(&e.tokens, tokens) == tokens.len())
    }

    /// Drops the oldest entries beyond the limits.
    fn evict(&mut self) {
        if let Some(limit) = self.limit_bytes {
            while !self.entries.is_empty() && self.bytes > limit {
                self.remove(0);
            }
        }
        let per_token = (self.bytes as f64 / self.n_tokens.max(1) as f64).max(1.0);
        let limit_tokens = match self.limit_bytes {
            Some(bytes) => self.limit_tokens.max((bytes as f64 / per_token) as usize),
            None => self.limit_tokens,
        };
        if limit_tokens > 0 {
            while !self.entries.is_empty() && self.n_tokens > limit_tokens {
                self.remove(0);
            }
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes of state held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The byte limit (`None`: none).
    pub fn limit_bytes(&self) -> Option<usize> {
        self.limit_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    fn toks(range: std::ops::Range<i32>) -> Vec<LlamaToken> {
        range.map(LlamaToken).collect()
    }

    /// Stores `tokens` with a state of `size` bytes whose first byte tags it.
    /// The running totals stay the entries' sums.
    fn put(cache: &mut PromptCache, tokens: &[LlamaToken], size: usize, tag: u8) -> bool {
        let kept = cache.store(tokens, &[], &Checkpoints::default(), size, || {
            let mut state = vec![0u8; size];
            state[0] = tag;
            Some(state)
        });
        let entries = &cache.entries;
        assert_eq!(
            cache.bytes,
            entries.iter().map(|e| e.state.len()).sum::<usize>()
        );
        assert_eq!(
            cache.n_tokens,
            entries.iter().map(|e| e.tokens.len()).sum::<usize>()
        );
        kept
    }

    #[test]
    fn off_at_zero_and_unlimited_below() {
        assert!(PromptCache::new(0, 4096).is_none());
        assert_eq!(PromptCache::new(-1, 4096).unwrap().limit_bytes(), None);
        assert_eq!(
            PromptCache::new(8192, 4096).unwrap().limit_bytes(),
            Some(8192 * MIB)
        );
    }

    #[test]
    fn keeps_one_copy_of_a_prefix() {
        let mut cache = PromptCache::new(64, 0).unwrap();
        assert!(put(&mut cache, &toks(0..100), MIB, 1));
        // Contained in the entry: nothing to add, and the state is not even read.
        assert!(
            !cache.store(&toks(0..50), &[], &Checkpoints::default(), MIB, || panic!(
                "read a held state"
            ))
        );
        // Contains the entry: it replaces it.
        assert!(put(&mut cache, &toks(0..200), 2 * MIB, 2));
        assert_eq!((cache.len(), cache.n_tokens), (1, 200));
        // Other LoRA scales are another computation of the same tokens.
        assert!(cache.store(
            &toks(0..200),
            &[0.5],
            &Checkpoints::default(),
            MIB,
            || Some(vec![3; MIB])
        ));
        assert_eq!(cache.len(), 2);
        // An empty sequence is not worth an entry.
        assert!(!put(&mut cache, &[], 1, 4));
    }

    #[test]
    fn evicts_the_oldest_to_stay_under_the_byte_limit() {
        let mut cache = PromptCache::new(10, 0).unwrap();
        for i in 0..4 {
            let tokens = toks(i * 1000..i * 1000 + 10);
            assert!(put(&mut cache, &tokens, 3 * MIB, i as u8));
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.bytes() <= 10 * MIB);
        assert!(
            cache.take_best(&[], &toks(0..10), &[]).is_none(),
            "oldest went"
        );
        // Over the limit by itself: refused, and nothing else evicted for it.
        assert!(!cache.store(
            &toks(5000..5010),
            &[],
            &Checkpoints::default(),
            11 * MIB,
            || panic!("read")
        ));
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn evicts_beyond_the_token_limit_without_a_byte_limit() {
        let mut cache = PromptCache::new(-1, 250).unwrap();
        for i in 0..3 {
            assert!(put(
                &mut cache,
                &toks(i * 1000..i * 1000 + 100),
                100,
                i as u8
            ));
        }
        assert_eq!(cache.n_tokens, 200);
        assert!(cache.take_best(&[], &toks(0..100), &[]).is_none());
    }

    #[test]
    fn an_entry_that_could_not_be_restored_goes_back_as_the_newest() {
        let mut cache = PromptCache::new(5, 0).unwrap();
        for i in 0..2 {
            assert!(put(
                &mut cache,
                &toks(i * 1000..i * 1000 + 10),
                2 * MIB,
                i as u8
            ));
        }
        let entry = cache.take_best(&[], &toks(0..10), &[]).expect("the first");
        assert_eq!((cache.len(), cache.bytes()), (1, 2 * MIB));
        cache.put_back(entry);
        assert_eq!(
            (cache.len(), cache.bytes(), cache.n_tokens),
            (2, 4 * MIB, 20)
        );
        // Newest now: a third entry evicts the other one, not it.
        assert!(put(&mut cache, &toks(2000..2010), 2 * MIB, 2));
        assert!(cache.take_best(&[], &toks(1000..1010), &[]).is_none());
        let entry = cache.take_best(&[], &toks(0..10), &[]).expect("kept");
        assert_eq!(entry.state[0], 0);
    }

    #[test]
    fn restores_the_entry_that_keeps_the_most() {
        let mut cache = PromptCache::new(64, 0).unwrap();
        let chat_a = toks(0..400);
        let chat_b: Vec<_> = toks(0..100).into_iter().chain(toks(5000..5300)).collect();
        assert!(put(&mut cache, &chat_a, MIB, b'a'));
        assert!(put(&mut cache, &chat_b, MIB, b'b'));
        // Conversation b returns with one more turn.
        let prompt: Vec<_> = chat_b.iter().copied().chain(toks(9000..9050)).collect();
        let entry = cache.take_best(&[], &prompt, &[]).expect("b restored");
        assert_eq!((entry.state[0], entry.tokens.len()), (b'b', 400));
        assert_eq!(cache.len(), 1, "a restored entry leaves the cache");
        // Entry a keeps 100 of its 400 tokens: exactly the quarter, so it may be restored into
        // an empty slot, but not over a slot that keeps more of what it holds.
        assert!(cache.take_best(&prompt, &prompt, &[]).is_none());
        let entry = cache
            .take_best(&[], &prompt, &[])
            .expect("a keeps a quarter");
        assert_eq!(entry.state[0], b'a');
    }

    #[test]
    fn never_trashes_a_large_entry_for_a_short_match() {
        let mut cache = PromptCache::new(64, 0).unwrap();
        assert!(put(&mut cache, &toks(0..1000), MIB, 1));
        assert!(cache.take_best(&[], &toks(0..249), &[]).is_none());
        assert!(cache.take_best(&[], &toks(0..250), &[]).is_some());
    }

    #[test]
    fn restores_only_what_was_computed_with_the_same_adapters() {
        let mut cache = PromptCache::new(64, 0).unwrap();
        assert!(
            cache.store(&toks(0..100), &[1.0], &Checkpoints::default(), 10, || Some(
                vec![0; 10]
            ))
        );
        assert!(cache.take_best(&[], &toks(0..120), &[0.0]).is_none());
        assert!(cache.take_best(&[], &toks(0..120), &[1.0]).is_some());
    }

    #[test]
    fn a_failed_read_keeps_nothing() {
        let mut cache = PromptCache::new(64, 0).unwrap();
        assert!(!cache.store(&toks(0..10), &[], &Checkpoints::default(), 10, || None));
        assert_eq!(cache.len(), 0);
    }
}
