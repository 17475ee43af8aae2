# Herald's default email messages (English).
#
# Every locale defines exactly the same message ids (a test enforces it). Variables:
#   $name   the recipient's display name
#   $email  the recipient's email address
#   $brand  the organization's display name, or the product name when there is no organization
#   $app    the application (client) name
#   $count  a whole number of minutes, hours or days
#   $factor the MFA factor id: otp, phone, email, push-notification, webauthn-roaming, webauthn-platform

## Shared by every email

greeting-named = Hello { $name },
greeting-anonymous = Hello,
link-fallback = If the button does not work, copy and paste this link into your browser:
# The button of the text part: its label, then the link on the next line.
text-button = { $label }:
expiry-minutes =
    { $count ->
        [one] This link expires in { $count } minute.
       *[other] This link expires in { $count } minutes.
    }
expiry-hours =
    { $count ->
        [one] This link expires in { $count } hour.
       *[other] This link expires in { $count } hours.
    }
expiry-days =
    { $count ->
        [one] This link expires in { $count } day.
       *[other] This link expires in { $count } days.
    }
code-expiry-minutes =
    { $count ->
        [one] This code expires in { $count } minute.
       *[other] This code expires in { $count } minutes.
    }
code-expiry-hours =
    { $count ->
        [one] This code expires in { $count } hour.
       *[other] This code expires in { $count } hours.
    }
code-expiry-days =
    { $count ->
        [one] This code expires in { $count } day.
       *[other] This code expires in { $count } days.
    }
signature = The { $brand } team
footer-sent-to = This email was sent to { $email }.
footer-automated = This is an automated message, please do not reply.

## verify_email

verify_email-subject = Verify your email address for { $brand }
verify_email-preheader = Confirm your email address to finish setting up your { $brand } account.
verify_email-heading = Verify your email address
verify_email-body = Please confirm that { $email } is your email address by clicking the button below.
verify_email-button = Verify email address
verify_email-footer = You received this email because this address was used to sign up for { $brand }. If you did not request it, you can safely ignore this email.

## reset_email

reset_email-subject = Reset your { $brand } password
reset_email-preheader = Use the link in this email to choose a new password.
reset_email-heading = Reset your password
reset_email-body = We received a request to reset the password of your { $brand } account. Click the button below to choose a new one.
reset_email-button = Reset password
reset_email-footer = You received this email because a password reset was requested for this address at { $brand }. If you did not request it, ignore this email: your password will not change.

## enrollment_email

enrollment_email-subject = Set up multi-factor authentication for { $brand }
enrollment_email-preheader = Add a second sign-in step to protect your { $brand } account.
enrollment_email-heading = Secure your account
enrollment_email-body = You have been invited to set up multi-factor authentication for your { $brand } account. Once it is enabled, signing in takes a second step, which keeps your account safe even if your password is stolen.
enrollment_email-factor =
    Method: { $factor ->
        [otp] authenticator app (one-time codes)
        [phone] text message or phone call
        [email] email
        [push-notification] push notification
        [webauthn-roaming] security key
        [webauthn-platform] fingerprint or face recognition on this device
       *[other] { $factor }
    }
enrollment_email-button = Set up authentication
enrollment_email-footer = You received this email because multi-factor authentication was requested for your account at { $brand }. If you did not request it, ignore this email.

## welcome_email

welcome_email-subject = Welcome to { $brand }
welcome_email-preheader = Your { $brand } account is ready.
welcome_email-heading = Welcome to { $brand }!
welcome_email-body = Your account has been created and is ready to use. We are glad to have you with us.
welcome_email-login = You can now sign in to { $app }.
welcome_email-button = Sign in
welcome_email-footer = You received this email because an account was created with this address at { $brand }. If you did not sign up, you can ignore this email.

## mfa_oob_code

mfa_oob_code-subject = Your { $brand } verification code
mfa_oob_code-preheader = Your one-time code for { $brand } is inside.
mfa_oob_code-heading = Your verification code
mfa_oob_code-body = Enter this one-time code to continue setting up multi-factor authentication for your { $brand } account:
mfa_oob_code-ignore = If you did not ask for this code, you can safely ignore this email. Never share this code with anyone.
mfa_oob_code-footer = You received this email because a verification code was requested for your account at { $brand }.
