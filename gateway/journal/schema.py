"""The journal's schema as numbered migrations, applied in order (PRAGMA user_version).

Never edit a released migration: add the next one. A journal from a newer tunegate is refused.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            provider TEXT NOT NULL,
            kind TEXT NOT NULL,
            state TEXT NOT NULL,
            idempotency_key TEXT NOT NULL UNIQUE,
            remote_id TEXT,
            name TEXT,
            base_model TEXT NOT NULL,
            spec_json TEXT NOT NULL,
            offer_json TEXT,
            estimate_json TEXT,
            actual_json TEXT,
            error TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            finished_at REAL
        );
        CREATE INDEX jobs_state ON jobs(state);
        CREATE INDEX jobs_provider_remote ON jobs(provider, remote_id);
        CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
            ts REAL NOT NULL,
            kind TEXT NOT NULL,
            message TEXT NOT NULL,
            step INTEGER,
            data_json TEXT
        );
        CREATE INDEX events_job ON events(job_id, id);
        CREATE TABLE artifacts (
            id TEXT PRIMARY KEY,
            job_id TEXT REFERENCES jobs(id) ON DELETE SET NULL,
            kind TEXT NOT NULL,
            uri TEXT NOT NULL,
            sha256 TEXT,
            bytes INTEGER,
            created_at REAL NOT NULL,
            meta_json TEXT
        );
        CREATE TABLE deployments (
            id TEXT PRIMARY KEY,
            artifact_id TEXT REFERENCES artifacts(id) ON DELETE SET NULL,
            target TEXT NOT NULL,
            name TEXT NOT NULL,
            endpoint TEXT,
            state TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            meta_json TEXT
        );
        """,
    ),
    (
        2,
        """
        ALTER TABLE jobs ADD COLUMN remote_json TEXT;
        ALTER TABLE events ADD COLUMN remote_id TEXT;
        CREATE UNIQUE INDEX events_remote ON events(job_id, remote_id) WHERE remote_id IS NOT NULL;
        """,
    ),
    (
        3,
        """
        CREATE TABLE usage (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            request_id TEXT NOT NULL UNIQUE,
            ts REAL NOT NULL,
            model TEXT NOT NULL,
            deployment_id TEXT,
            target TEXT,
            key_id TEXT,
            route TEXT NOT NULL,
            status INTEGER NOT NULL,
            stream INTEGER NOT NULL DEFAULT 0,
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            estimated INTEGER NOT NULL DEFAULT 0,
            latency_ms REAL NOT NULL,
            cost_usd REAL,
            fallback_from TEXT,
            error TEXT,
            prompt_json TEXT
        );
        CREATE INDEX usage_ts ON usage(ts);
        CREATE INDEX usage_deployment ON usage(deployment_id, ts);
        CREATE INDEX usage_key ON usage(key_id, ts);
        CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            prefix TEXT NOT NULL,
            sha256 TEXT NOT NULL UNIQUE,
            monthly_budget_usd REAL,
            created_at REAL NOT NULL,
            revoked_at REAL
        );
        CREATE TABLE aliases (
            name TEXT PRIMARY KEY,
            targets_json TEXT NOT NULL,
            updated_at REAL NOT NULL
        );
        """,
    ),
    (
        4,
        """
        CREATE TABLE files (
            id TEXT PRIMARY KEY,
            filename TEXT NOT NULL,
            purpose TEXT NOT NULL,
            bytes INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            path TEXT NOT NULL,
            status TEXT NOT NULL,
            status_details TEXT,
            key_id TEXT,
            created_at REAL NOT NULL,
            deleted_at REAL
        );
        CREATE TABLE ft_jobs (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            request_key TEXT NOT NULL UNIQUE,
            content_sha TEXT NOT NULL,
            key_id TEXT,
            job_id TEXT UNIQUE,
            state TEXT NOT NULL,
            request_json TEXT NOT NULL,
            deploy_to TEXT,
            fine_tuned_model TEXT,
            deployment_id TEXT,
            result_file TEXT,
            error_json TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE INDEX ft_jobs_content ON ft_jobs(content_sha, created_at);
        """,
    ),
    (
        5,
        """
        CREATE TABLE evals (
            id TEXT PRIMARY KEY,
            job_id TEXT REFERENCES jobs(id) ON DELETE SET NULL,
            kind TEXT NOT NULL,
            target TEXT NOT NULL,
            verdict TEXT,
            summary_json TEXT,
            path TEXT NOT NULL,
            created_at REAL NOT NULL
        );
        CREATE INDEX evals_job ON evals(job_id, created_at);
        """,
    ),
    (
        6,
        """
        CREATE TABLE experiments (
            id TEXT PRIMARY KEY,
            alias TEXT NOT NULL,
            incumbent TEXT NOT NULL,
            candidate TEXT NOT NULL,
            share REAL NOT NULL,
            state TEXT NOT NULL,
            settings_json TEXT,
            decision_json TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            ended_at REAL
        );
        CREATE UNIQUE INDEX experiments_one_running ON experiments(alias)
            WHERE state = 'running';
        ALTER TABLE usage ADD COLUMN experiment_id TEXT;
        ALTER TABLE usage ADD COLUMN arm TEXT;
        CREATE INDEX usage_experiment ON usage(experiment_id, ts);
        CREATE TABLE feedback (
            request_id TEXT NOT NULL,
            source TEXT NOT NULL,
            score REAL NOT NULL,
            key_id TEXT,
            created_at REAL NOT NULL,
            PRIMARY KEY (request_id, source)
        );
        CREATE TABLE experiment_bodies (
            request_id TEXT PRIMARY KEY,
            experiment_id TEXT NOT NULL,
            arm TEXT NOT NULL,
            prompt_json TEXT NOT NULL,
            answer TEXT,
            created_at REAL NOT NULL
        );
        CREATE INDEX experiment_bodies_exp ON experiment_bodies(experiment_id, created_at);
        """,
    ),
    (
        7,
        """
        CREATE TABLE teacher_answers (
            key TEXT PRIMARY KEY,
            teacher TEXT NOT NULL,
            settings_sha TEXT NOT NULL,
            prompt_sha TEXT NOT NULL,
            sample INTEGER NOT NULL,
            state TEXT NOT NULL,
            answer TEXT,
            finish_reason TEXT,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            usd REAL,
            attempts INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            asked_at REAL,
            answered_at REAL
        );
        CREATE INDEX teacher_answers_run ON teacher_answers(teacher, settings_sha, state);
        """,
    ),
    (
        8,
        """
        CREATE TABLE responses (
            id TEXT PRIMARY KEY,
            model TEXT NOT NULL,
            key_id TEXT,
            messages_json TEXT NOT NULL,
            created_at REAL NOT NULL
        );
        CREATE INDEX responses_created ON responses(created_at);
        """,
    ),
    (
        9,
        """
        ALTER TABLE responses ADD COLUMN response_json TEXT;
        """,
    ),
    (
        10,
        """
        CREATE TABLE usage_daily (
            day REAL NOT NULL,
            model TEXT NOT NULL,
            route TEXT NOT NULL,
            deployment_id TEXT NOT NULL DEFAULT '',
            target TEXT NOT NULL DEFAULT '',
            key_id TEXT NOT NULL DEFAULT '',
            experiment_id TEXT NOT NULL DEFAULT '',
            arm TEXT NOT NULL DEFAULT '',
            requests INTEGER NOT NULL,
            errors INTEGER NOT NULL,
            fallbacks INTEGER NOT NULL,
            estimated INTEGER NOT NULL,
            prompt_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            cost_usd REAL NOT NULL,
            latency_ms_sum REAL NOT NULL,
            PRIMARY KEY (day, model, route, deployment_id, target, key_id, experiment_id, arm)
        );
        CREATE INDEX usage_daily_key ON usage_daily(key_id, day);
        CREATE TABLE replicas (
            id TEXT PRIMARY KEY,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            address TEXT,
            started_at REAL NOT NULL,
            seen_at REAL NOT NULL,
            engines_json TEXT NOT NULL
        );
        """,
    ),
]
