# Herald のメール既定文言（日本語、です・ます調）。
# 日本語には複数形の区別がないため、期限の文言に選択式は使いません。

## すべてのメールで共通

greeting-named = { $name } 様
greeting-anonymous = お客様
link-fallback = ボタンが機能しない場合は、次のリンクをコピーしてブラウザに貼り付けてください。
text-button = { $label }：
expiry-minutes = このリンクの有効期限は { $count } 分です。
expiry-hours = このリンクの有効期限は { $count } 時間です。
expiry-days = このリンクの有効期限は { $count } 日です。
code-expiry-minutes = このコードの有効期限は { $count } 分です。
code-expiry-hours = このコードの有効期限は { $count } 時間です。
code-expiry-days = このコードの有効期限は { $count } 日です。
signature = { $brand } チーム
footer-sent-to = このメールは { $email } 宛てに送信されました。
footer-automated = このメールは送信専用のアドレスから送信されています。ご返信いただいてもお答えできませんのでご了承ください。

## verify_email

verify_email-subject = 【{ $brand }】メールアドレスのご確認
verify_email-preheader = メールアドレスを確認して、{ $brand } アカウントの設定を完了してください。
verify_email-heading = メールアドレスのご確認
verify_email-body = 下のボタンをクリックして、{ $email } がお客様のメールアドレスであることを確認してください。
verify_email-button = メールアドレスを確認する
verify_email-footer = このメールは、{ $brand } の登録にこのメールアドレスが使用されたため送信されました。お心当たりがない場合は、このメールを破棄してください。

## reset_email

reset_email-subject = 【{ $brand }】パスワード再設定のご案内
reset_email-preheader = このメールのリンクから新しいパスワードを設定してください。
reset_email-heading = パスワードの再設定
reset_email-body = { $brand } アカウントのパスワード再設定のリクエストを受け付けました。下のボタンをクリックして、新しいパスワードを設定してください。
reset_email-button = パスワードを再設定する
reset_email-footer = このメールは、{ $brand } でこのメールアドレスのパスワード再設定がリクエストされたため送信されました。お心当たりがない場合は、このメールを破棄してください。パスワードは変更されません。

## enrollment_email

enrollment_email-subject = 【{ $brand }】多要素認証の設定のお願い
enrollment_email-preheader = ログインに確認手順を追加して、{ $brand } アカウントを保護してください。
enrollment_email-heading = アカウントを保護してください
enrollment_email-body = { $brand } アカウントの多要素認証を設定してください。設定すると、ログイン時に追加の確認手順が必要になり、万一パスワードが漏えいした場合でもアカウントを保護できます。
enrollment_email-factor =
    認証方法：{ $factor ->
        [otp] 認証アプリ（ワンタイムコード）
        [phone] SMS または音声通話
        [email] メール
        [push-notification] プッシュ通知
        [webauthn-roaming] セキュリティキー
        [webauthn-platform] このデバイスの指紋認証または顔認証
       *[other] { $factor }
    }
enrollment_email-button = 認証を設定する
enrollment_email-footer = このメールは、{ $brand } のお客様のアカウントで多要素認証の設定がリクエストされたため送信されました。お心当たりがない場合は、このメールを破棄してください。

## welcome_email

welcome_email-subject = 【{ $brand }】ご登録ありがとうございます
welcome_email-preheader = { $brand } アカウントの準備が整いました。
welcome_email-heading = { $brand } へようこそ
welcome_email-body = アカウントが作成され、ご利用いただけるようになりました。今後ともよろしくお願いいたします。
welcome_email-login = { $app } にログインできるようになりました。
welcome_email-button = ログイン
welcome_email-footer = このメールは、このメールアドレスで { $brand } のアカウントが作成されたため送信されました。お心当たりがない場合は、このメールを破棄してください。

## mfa_oob_code

mfa_oob_code-subject = { $brand } の確認コード
mfa_oob_code-preheader = { $brand } のワンタイムコードをお送りします。
mfa_oob_code-heading = 確認コード
mfa_oob_code-body = { $brand } アカウントの多要素認証の設定を続けるには、次のワンタイムコードを入力してください。
mfa_oob_code-ignore = このコードをリクエストした覚えがない場合は、このメールを破棄してください。このコードは誰にも教えないでください。
mfa_oob_code-footer = このメールは、{ $brand } のお客様のアカウントで確認コードがリクエストされたため送信されました。
