//! Enabling a second factor in two steps without a session (Zimbra's
//! `EnableTwoFactorAuthRequest`), and the policy that lets only admins set one up.

use crate::helpers::*;
use otpd_core::*;

const TEN: RecoveryCodeSet = RecoveryCodeSet::Exactly {
    count: 10,
    length: 8,
};

fn plain(password: &str) -> PasswordProof {
    PasswordProof::Plain(pw(password))
}

async fn start(env: &Env, password: &str) -> CoreResult<EnablementStart> {
    env.service
        .start_enablement("alice", plain(password), &TotpOptions::default(), &meta())
        .await
}

#[tokio::test]
async fn two_steps_with_a_single_use_token() {
    let env = env().await;
    env.account("alice", &[]).await;
    let r = start(&env, "wrong password").await;
    assert!(matches!(r, Err(CoreError::Unauthenticated)), "{r:?}");
    let EnablementStart::Started { secret, token, .. } = start(&env, PASSWORD).await.unwrap()
    else {
        panic!("started");
    };
    let secret = otp::Secret::from_base32(secret.expose()).unwrap();
    // The enablement token is good for enrolling only.
    let limited = env
        .service
        .authenticate(token.token.expose())
        .await
        .unwrap();
    let r = env.service.list_api_keys(&limited, Some("alice")).await;
    assert!(r.is_err(), "{r:?}");

    let wrong = env
        .service
        .complete_enablement(
            EnablementProof::Token(token.token.expose()),
            env.wrong_code(&secret),
            TEN,
            &meta(),
        )
        .await;
    assert!(
        matches!(wrong, Err(CoreError::SecondFactorFailed { .. })),
        "{wrong:?}"
    );
    let enabled = env
        .service
        .complete_enablement(
            EnablementProof::Token(token.token.expose()),
            &env.code(&secret),
            TEN,
            &meta(),
        )
        .await
        .unwrap();
    assert_eq!(enabled.recovery_codes.len(), 10);
    assert!(enabled.recovery_codes.iter().all(|c| c.expose().len() == 8));
    // The new session has its second factor; the token and the earlier session are gone.
    let Principal::Account(session) = env
        .service
        .authenticate(enabled.session.token.expose())
        .await
        .unwrap()
    else {
        panic!("an account");
    };
    assert_eq!(session.second_factor_at, Some(env.clock.now()));
    let r = env.service.authenticate(token.token.expose()).await;
    assert!(matches!(r, Err(CoreError::Unauthenticated)), "{r:?}");
    // The session opened before is gone too.
    let r = env
        .service
        .list_sessions(&Principal::Cli, "alice")
        .await
        .unwrap();
    assert_eq!(r.len(), 1, "{r:?}");
    let reused = env
        .service
        .complete_enablement(
            EnablementProof::Token(token.token.expose()),
            &env.code(&secret),
            TEN,
            &meta(),
        )
        .await;
    assert!(
        matches!(reused, Err(CoreError::Unauthenticated)),
        "{reused:?}"
    );
    assert!(matches!(
        start(&env, PASSWORD).await.unwrap(),
        EnablementStart::AlreadyEnabled
    ));
}

#[tokio::test]
async fn the_second_step_takes_the_password_too() {
    let env = env().await;
    env.account("alice", &[]).await;
    let EnablementStart::Started { secret, .. } = start(&env, PASSWORD).await.unwrap() else {
        panic!("started");
    };
    let secret = otp::Secret::from_base32(secret.expose()).unwrap();
    let proof = |password: &str| EnablementProof::Password {
        username: "alice",
        password: plain(password),
    };
    let r = env
        .service
        .complete_enablement(proof("wrong password"), &env.code(&secret), TEN, &meta())
        .await;
    assert!(matches!(r, Err(CoreError::Unauthenticated)), "{r:?}");
    env.service
        .complete_enablement(proof(PASSWORD), &env.code(&secret), TEN, &meta())
        .await
        .unwrap();
}

/// With `self_enrollment` off only admins set up authenticators (Zimbra's
/// `zimbraFeatureTwoFactorAuthAvailable`), and it cannot be off while 2FA is enforced.
#[tokio::test]
async fn self_enrollment_can_be_switched_off() {
    let env = env().await;
    let alice = env.account("alice", &[]).await;
    env.policy(|p| p.self_enrollment = false).await;
    let r = start(&env, PASSWORD).await;
    assert!(matches!(r, Err(CoreError::Forbidden(_))), "{r:?}");
    let r = env
        .service
        .begin_enrollment(&alice, "alice", &TotpOptions::default(), &meta())
        .await;
    assert!(matches!(r, Err(CoreError::Forbidden(_))), "{r:?}");
    env.service
        .provision_totp(
            &Principal::Cli,
            "alice",
            &TotpOptions::default(),
            false,
            &meta(),
        )
        .await
        .unwrap();
    let mut policy = env.service.get_policy(&Principal::Cli).await.unwrap();
    policy.enforced = true;
    let r = env
        .service
        .set_policy(&Principal::Cli, policy, &meta())
        .await;
    assert!(matches!(r, Err(CoreError::Invalid { .. })), "{r:?}");
}
