# The ticket pages' messages (English): /u/email-verification, /u/reset-password, /u/mfa-enrollment.
#
# Every locale defines exactly the same message ids. Variables:
#   $email  the user's email address
#   $app    the application (client) name
#   $brand  the organization's display name, or the product name
#   $min, $max  a number of characters

page-footer = This page was sent to you by { $brand }.
page-continue = Continue
page-back-to-app = Back to { $app }

## Links that cannot be used
page-link-used-title = Link already used
page-link-used = This link has already been used. Please ask for a new one.
page-link-expired-title = Link expired
page-link-expired = This link has expired. Please ask for a new one.
page-link-invalid-title = Invalid link
page-link-invalid = This link is not valid. Check that you opened the whole link from the email.
page-session-title = Please try again
page-session = The form expired or was sent from another page. Open the link from the email again.
page-too-many-title = Too many attempts
page-too-many = Too many attempts. Wait a minute, then try again.
page-error-title = Something went wrong
page-error = The operation cannot be completed. Please try again later.

## Email verification
page-verify-title = Verify your email address
page-verify-intro = Confirm that { $email } is your email address.
page-verify-button = Verify my email
page-verify-done-title = Email verified
page-verify-done = Your email address was successfully verified.
page-verify-already = This account is already verified.
page-verify-no-user = User account does not exist or the verification code is invalid.

## Password change
page-password-title = Change your password
page-password-intro = Choose a new password for { $email }.
page-password-new = New password
page-password-confirm = Confirm the new password
page-password-hint = Use at least { $min } characters. Long phrases of unrelated words are strong and easy to remember.
page-password-button = Change password
page-password-mismatch = The two passwords do not match.
page-password-too-short = The password must be at least { $min } characters long.
page-password-too-long = The password must be at most { $max } characters long.
page-password-weak = This password is too easy to guess. Make it longer, or add unrelated words.
page-password-done-title = Password changed
page-password-done = You can now log in to the application with the new password.
page-password-failed = The operation cannot be completed. Please try again.

## MFA enrollment
page-mfa-title = Set up two-factor authentication
page-mfa-otp-intro = Scan this QR code with an authenticator app, then enter the six-digit code it shows.
page-mfa-otp-qr-alt = QR code to scan with your authenticator app
page-mfa-otp-manual = Cannot scan it? Enter this key in the app instead:
page-mfa-code = Six-digit code
page-mfa-verify-button = Verify and turn on
page-mfa-otp-wrong = That code is not right. Check the time on your device and enter the current code.
page-mfa-email-intro = We will email a six-digit code to { $email }.
page-mfa-email-send = Email me a code
page-mfa-email-sent = We sent a code to { $email }. It expires in 10 minutes.
page-mfa-email-wrong = That code is not right, or it has expired.
page-mfa-done-title = Two-factor authentication is on
page-mfa-done = Your account is now protected with two-factor authentication.
page-mfa-already = Two-factor Verification has Already Been Enabled.
