{ filemap for Free Pascal and Delphi: a TFileMap component over the C ABI
  of filemap (libfilemap_ffi.so / filemap_ffi.dll, see filemap-ffi/).

  TFileMap keeps the old component's shape: MapName, Size, ExistsAlready,
  IsMapOpen, AutoSynchronize, MapStrings and OnChange; OpenMap, CloseMap,
  ReadMap, WriteMap, Clear. MaxCapacity (default: Size) lets a map this
  component creates grow past Size as its content does (docs/growth.md). Behind it is filemap: a publish never tears,
  a reader never blocks a writer, a crashed writer loses nothing that was
  published, and too-large content raises EFileMapError while the content
  already in the map stays.

  Delivery of changes made by others: OpenMap starts a thread that sleeps
  until the map changes (fm_wait, ended by a cancel token when CloseMap
  stops it) and queues the change to the main thread (TThread.Queue). A
  GUI application gets OnChange on the main thread from its message loop;
  a console program calls CheckSynchronize (or ProcessChanges) from its
  loop. CheckChanges checks without any thread.
  OnChange never fires for this component's own writes.

  On Unix the program must put cthreads first in its uses clause. Linking:
  the library's directory must be known to the linker and loader, e.g.
  fpc -Fl<dir> -k-rpath=<dir> app.pas. A map inherited through fork() is
  refused in the child (EFileMapError with FM_E_FORKED_HANDLE): reopen it
  there. }
unit filemap;

{$ifdef FPC}
  { objfpc by default; FILEMAP_MODE_DELPHI or FILEMAP_MODE_DELPHIUNICODE
    (-d on the command line) compile it in FPC's Delphi dialects instead,
    the closest FPC gets to how Delphi compiles it (CI checks all three). }
  {$if defined(FILEMAP_MODE_DELPHIUNICODE)}
    {$mode delphiunicode}
  {$elseif defined(FILEMAP_MODE_DELPHI)}
    {$mode delphi}{$H+}
  {$else}
    {$mode objfpc}{$H+}
  {$endif}
  {$packrecords C}
{$endif}

interface

uses
  Classes, SysUtils;

const
  {$ifdef MSWINDOWS}
  FileMapLib = 'filemap_ffi.dll';
  {$else}
  FileMapLib = 'filemap_ffi';
  {$endif}

  { The C ABI version this unit is written against: filemap.h's
    FM_ABI_VERSION, which Pascal (case-blind) cannot name beside the
    function fm_abi_version. OpenMap refuses a library of another one. }
  FileMapAbiVersion = 2;

  { Statuses (fm_status): FM_OK or a negative error code. }
  FM_OK = 0;
  FM_E_NULL = -1;
  FM_E_INVALID_ARGUMENT = -2;
  FM_E_PANIC = -3;
  FM_E_BUFFER_TOO_SMALL = -4;
  FM_E_UNKNOWN = -5;
  FM_E_INVALID_NAME = -10;
  FM_E_INVALID_CAPACITY = -11;
  FM_E_TOO_LARGE = -12;
  FM_E_NOT_FOUND = -13;
  FM_E_ALREADY_EXISTS = -14;
  FM_E_PERMISSION_DENIED = -15;
  FM_E_OUT_OF_SPACE = -16;
  FM_E_INCOMPATIBLE_VERSION = -17;
  FM_E_NOT_A_REGION = -18;
  FM_E_TRUNCATED = -19;
  FM_E_CORRUPTED = -20;
  FM_E_TIMEOUT = -21;
  FM_E_WOULD_DEADLOCK = -22;
  FM_E_TOO_MANY_ATTACHED = -23;
  FM_E_NOT_UTF8 = -24;
  FM_E_UNSUPPORTED = -25;
  FM_E_UNSUPPORTED_OPTION = -26;
  FM_E_IO = -27;
  FM_E_CONFLICT = -28;
  FM_E_WRONG_THREAD = -29;
  FM_E_NOT_LOCKED = -30;
  FM_E_FORKED_HANDLE = -31;
  FM_E_NOT_A_VALUE = -32;
  FM_E_WRONG_TYPE = -33;
  FM_E_CODEC = -34;
  FM_E_NAME_COLLISION = -35;
  FM_E_CANCELLED = -36;
  FM_E_INTERRUPTED = -37;

  { fm_open flags. }
  FM_CREATE_ONLY = 1;
  FM_OPEN_ONLY = 2;
  FM_PERSISTENT = 4;

  { SizeOf(TFmOpenOptions): fm_open_options' first (this) version. }
  FM_OPEN_OPTIONS_SIZE = 24;

  { fm_wait strategies. }
  FM_WAIT_SLEEP = 0;
  FM_WAIT_SPIN = 1;
  FM_WAIT_ADAPTIVE = 2;

  FileMapDefaultSize = 4096;
  FileMapMinSize = 32;
  { The largest capacity and maximum capacity (1 GiB). }
  FileMapMaxSize = 1073741824;

type
  {$ifndef FPC}
  { Delphi spellings of FPC's integer types, before their first use. }
  QWord = UInt64;
  PQWord = ^QWord;
  PtrUInt = NativeUInt;
  PPtrUInt = ^PtrUInt;
  {$endif}

  { The content's bytes: UTF-8. A Unicode build (string = UnicodeString:
    Delphi 2009+, FPC's delphiunicode mode) converts MapStrings to and
    from it; an ANSI build keeps the bytes as they are in its strings. }
  {$ifdef UNICODE}
  TFmBytes = UTF8String;
  {$else}
  TFmBytes = AnsiString;
  {$endif}

  { The C ABI's types (filemap.h). }
  TFmWriter = record
    Pid: LongWord;
    Handle: LongWord;
  end;
  TFmStamp = record
    Generation: QWord;
    Writer: TFmWriter;
  end;
  PFmStamp = ^TFmStamp;
  { fm_open_options: zero it, set Size to SizeOf(TFmOpenOptions). }
  TFmOpenOptions = record
    Size: LongWord;
    Flags: LongWord;
    Capacity: QWord;
    MaxCapacity: QWord;
  end;
  PFmOpenOptions = ^TFmOpenOptions;

{ The C ABI, as declared in filemap.h; see there for each call's contract. }
function fm_abi_version: LongWord; cdecl; external FileMapLib;
function fm_open(Name: PAnsiChar; Capacity: QWord; Flags: LongWord; OutMap: PPointer): LongInt; cdecl; external FileMapLib;
function fm_open_ex(Name: PAnsiChar; Options: PFmOpenOptions; OutMap: PPointer): LongInt; cdecl; external FileMapLib;
function fm_close(Map: Pointer): LongInt; cdecl; external FileMapLib;
function fm_existed_already(Map: Pointer; OutExisted: PByte): LongInt; cdecl; external FileMapLib;
function fm_capacity(Map: Pointer; OutCapacity: PPtrUInt): LongInt; cdecl; external FileMapLib;
function fm_max_capacity(Map: Pointer; OutMaxCapacity: PPtrUInt): LongInt; cdecl; external FileMapLib;
function fm_id(Map: Pointer; OutId: Pointer): LongInt; cdecl; external FileMapLib;
function fm_write(Map: Pointer; Data: PByte; Len: PtrUInt; Generation: PQWord): LongInt; cdecl; external FileMapLib;
function fm_read(Map: Pointer; Buf: PByte; Cap: PtrUInt; Len: PPtrUInt; Stamp: PFmStamp): LongInt; cdecl; external FileMapLib;
function fm_generation(Map: Pointer; OutGeneration: PQWord): LongInt; cdecl; external FileMapLib;
function fm_wait(Map: Pointer; Seen: QWord; Strategy: LongWord; TimeoutNs: Int64; Cancel: Pointer; Generation: PQWord): LongInt; cdecl; external FileMapLib;
function fm_cancel_new(OutToken: PPointer): LongInt; cdecl; external FileMapLib;
function fm_cancel(Token: Pointer): LongInt; cdecl; external FileMapLib;
function fm_cancel_free(Token: Pointer): LongInt; cdecl; external FileMapLib;
function fm_lock(Map: Pointer; OwnerDied: PByte): LongInt; cdecl; external FileMapLib;
function fm_unlock(Map: Pointer): LongInt; cdecl; external FileMapLib;
function fm_remove(Name: PAnsiChar): LongInt; cdecl; external FileMapLib;
function fm_last_error: PAnsiChar; cdecl; external FileMapLib;
function fm_status_name(Status: LongInt): PAnsiChar; cdecl; external FileMapLib;

type
  { Raised for every failed call; Status is the C ABI's FM_E_* code. }
  EFileMapError = class(Exception)
  private
    FStatus: LongInt;
  public
    { A library call just failed with AStatus: the message is What, the
      library's own message (fm_last_error) and the status's name. }
    constructor CreateStatus(AStatus: LongInt; const What: string);
    { The unit refused something itself, no library call failed: the
      message is What and the status's name, without fm_last_error, which
      would be an older, unrelated failure's. }
    constructor CreateLocal(AStatus: LongInt; const What: string);
    property Status: LongInt read FStatus;
  end;

  TFileMap = class;

  { Sleeps in fm_wait and queues each change to the main thread; Stop
    cancels the wait through the thread's cancel token. }
  TFileMapWatchThread = class(TThread)
  private
    FOwner: TFileMap;
    FMap: Pointer;
    FSeen: QWord;
    FCancel: Pointer;
    FJoined: Boolean;
    {$ifdef FPC}
    { Set when Execute returns (see Stop). }
    FDone: PRTLEvent;
    {$endif}
    procedure Deliver;
  protected
    procedure Execute; override;
  public
    constructor Create(AOwner: TFileMap; AMap: Pointer; ASeen: QWord);
    destructor Destroy; override;
    { End the thread: cancel its wait and wait for it to finish. }
    procedure Stop;
  end;

  TFileMap = class(TComponent)
  private
    FMap: Pointer;
    FMapName: string;
    FSize: LongWord;
    FMaxCapacity: LongWord;
    FExistsAlready: Boolean;
    FAutoSynchronize: Boolean;
    FMapStrings: TStringList;
    FOnChange: TNotifyEvent;
    FSeen: QWord;
    FId: TFmWriter;
    FLoading: Boolean;
    FWatch: TFileMapWatchThread;
    FUseThread: Boolean;
    procedure SetMapName(const Value: string);
    procedure SetSize(Value: LongWord);
    procedure SetMaxCapacity(Value: LongWord);
    function GetMaxCapacity: LongWord;
    function MaxCapacityStored: Boolean;
    function GetCapacity: LongWord;
    function GetIsMapOpen: Boolean;
    procedure StringsChanged(Sender: TObject);
    procedure Check(Status: LongInt; const What: string);
    procedure LoadContent(const Content: TFmBytes);
    function ReadContent(out Stamp: TFmStamp): TFmBytes;
    function JoinLines: TFmBytes;
    procedure RequireOpen(const What: string);
  public
    constructor Create(AOwner: TComponent); override;
    destructor Destroy; override;
    { Open (or create) the map MapName. If it existed, MapStrings gets its
      content; if this call created it, MapStrings is written into it. }
    procedure OpenMap;
    { Close the map; a non-persistent map disappears with its last user. }
    procedure CloseMap;
    { Replace MapStrings with the map's content (no OnChange). }
    procedure ReadMap;
    { Publish MapStrings (lines joined by LF). Past the capacity and
      within MaxCapacity the map grows first. Raises EFileMapError with
      FM_E_TOO_LARGE when they do not fit even then; the map keeps its
      content. }
    procedure WriteMap;
    { Empty MapStrings and the map. }
    procedure Clear;
    { Take the map's cross-process lock (thread-affine: Unlock from the same
      thread). ReadMap and WriteMap from this thread run under it. Returns
      whether the previous owner died holding it. }
    function Lock: Boolean;
    procedure Unlock;
    { If another writer changed the map since we last looked, load its
      content into MapStrings and fire OnChange; True when it did. Needs no
      thread: call it from a timer or a loop. }
    function CheckChanges: Boolean;
    { Deliver what the watch thread queued (console programs); waits up to
      TimeoutMs for something to arrive. Same as CheckSynchronize. }
    procedure ProcessChanges(TimeoutMs: Integer = 0);
    property IsMapOpen: Boolean read GetIsMapOpen;
    property ExistsAlready: Boolean read FExistsAlready;
    property MapStrings: TStringList read FMapStrings;
    { The generation MapStrings was last read from or written as. }
    property Generation: QWord read FSeen;
    { The map's capacity in bytes now: Size, or more once it grew (in
      any process). Closed: Size. }
    property Capacity: LongWord read GetCapacity;
  published
    property MapName: string read FMapName write SetMapName;
    { Capacity in bytes of a map OpenMap creates (default 4096, at least
      32); set while closed. Attaching, the map's own sizes hold. }
    property Size: LongWord read FSize write SetSize default FileMapDefaultSize;
    { The most a map OpenMap creates may grow to, in bytes: at least Size,
      at most 1 GiB (else OpenMap raises FM_E_INVALID_CAPACITY). 0, the
      default, means Size: the map never grows, as before. Set while
      closed; open, it reads the map's own maximum. }
    property MaxCapacity: LongWord read GetMaxCapacity write SetMaxCapacity stored MaxCapacityStored;
    { When True, every change to MapStrings is written through at once. }
    property AutoSynchronize: Boolean read FAutoSynchronize write FAutoSynchronize default False;
    { Start the watch thread in OpenMap (default True). Without it, call
      CheckChanges to see others' changes. }
    property UseThread: Boolean read FUseThread write FUseThread default True;
    { Fired on the main thread for changes made by others, never for ours. }
    property OnChange: TNotifyEvent read FOnChange write FOnChange;
  end;

implementation

{ A C string from the library (UTF-8) as a string. }
function CText(P: PAnsiChar): string;
var
  Bytes: TFmBytes;
begin
  Bytes := TFmBytes(P);
  {$ifdef UNICODE}
  Result := UTF8ToString(Bytes);
  {$else}
  Result := Bytes;
  {$endif}
end;

{ Count bytes of S from Start, as bytes (Copy would convert through
  UnicodeString in delphiunicode mode). }
function Slice(const S: TFmBytes; Start, Count: Integer): TFmBytes;
begin
  SetLength(Result, Count);
  if Count > 0 then
    Move(S[Start], Result[1], Count);
end;

{ One line of the content as a MapStrings entry. }
function Line(const Bytes: TFmBytes): string;
begin
  {$ifdef UNICODE}
  Result := UTF8ToString(Bytes);
  {$else}
  Result := Bytes;
  {$endif}
end;

constructor EFileMapError.CreateStatus(AStatus: LongInt; const What: string);
begin
  inherited Create(What + ': ' + CText(fm_last_error()) + ' (' +
    CText(fm_status_name(AStatus)) + ')');
  FStatus := AStatus;
end;

constructor EFileMapError.CreateLocal(AStatus: LongInt; const What: string);
begin
  inherited Create(What + ' (' + CText(fm_status_name(AStatus)) + ')');
  FStatus := AStatus;
end;

{ TFileMapWatchThread }

constructor TFileMapWatchThread.Create(AOwner: TFileMap; AMap: Pointer; ASeen: QWord);
begin
  FOwner := AOwner;
  FMap := AMap;
  FSeen := ASeen;
  { Without a token (fm_cancel_new failed) the thread polls instead. }
  FCancel := nil;
  if fm_cancel_new(@FCancel) <> FM_OK then
    FCancel := nil;
  FJoined := False;
  {$ifdef FPC}
  FDone := RTLEventCreate;
  {$endif}
  FreeOnTerminate := False;
  inherited Create(False);
end;

destructor TFileMapWatchThread.Destroy;
begin
  { TThread's destructor ends a thread still running; its wait must be
    cancelled first, and the token outlive it. }
  Stop;
  inherited Destroy;
  if FCancel <> nil then
    fm_cancel_free(FCancel);
  FCancel := nil;
  {$ifdef FPC}
  if FDone <> nil then
    RTLEventDestroy(FDone);
  FDone := nil;
  {$endif}
end;

procedure TFileMapWatchThread.Stop;
begin
  Terminate;
  if FCancel <> nil then
    fm_cancel(FCancel);
  if FJoined then
    Exit;
  FJoined := True;
  {$ifdef FPC}
  { No thread to wait for when TThread.Create failed to start one. }
  if Handle = TThreadID(0) then
    Exit;
  {$ifdef UNIX}
  { FPC's WaitFor, called from the main thread, looks for the end of the
    thread only between CheckSynchronize(100) calls: 100 ms for a thread
    that ends without queueing anything. So wait for Execute to return,
    then for the RTL to mark the thread Finished (it does so right after),
    and WaitFor finds it finished and joins at once. The join must be
    WaitFor's: it marks the thread reaped, and TThread.Destroy joins a
    thread not marked so, which would be a second pthread_join of it. }
  RTLEventWaitFor(FDone);
  while not Finished do
    ThreadSwitch;
  WaitFor;
  {$else}
  { Windows: FPC's WaitFor from the main thread (a MsgWaitForMultiple-
    Objects loop on the thread and the Synchronize event) never returned
    here under Wine. Waiting on the thread's handle is enough, and
    TThread.Destroy does not wait again for a Finished thread; a Windows
    handle may be waited on any number of times. }
  WaitForThreadTerminate(Handle, 0);
  {$endif}
  {$else}
  WaitFor;
  {$endif}
end;

procedure TFileMapWatchThread.Deliver;
begin
  FOwner.CheckChanges;
end;

procedure TFileMapWatchThread.Execute;
var
  Now: QWord;
  TimeoutNs: Int64;
  Status: LongInt;
begin
  { No timeout: Stop cancels the wait (without a token, a short one so
    that Terminate is seen promptly). }
  if FCancel <> nil then
    TimeoutNs := -1
  else
    TimeoutNs := 100 * 1000 * 1000;
  try
    while not Terminated do
    begin
      Status := fm_wait(FMap, FSeen, FM_WAIT_SLEEP, TimeoutNs, FCancel, @Now);
      if Status = FM_E_TIMEOUT then
        Continue;
      { Any other failure (the token cancelled, the map unusable) ends the
        thread. }
      if Status <> FM_OK then
        Break;
      FSeen := Now;
      Queue({$ifdef FPC_OBJFPC}@{$endif}Deliver);
    end;
  finally
    {$ifdef FPC}
    RTLEventSetEvent(FDone);
    {$endif}
  end;
end;

{ TFileMap }

constructor TFileMap.Create(AOwner: TComponent);
begin
  inherited Create(AOwner);
  FSize := FileMapDefaultSize;
  FUseThread := True;
  FMapStrings := TStringList.Create;
  FMapStrings.OnChange := {$ifdef FPC_OBJFPC}@{$endif}StringsChanged;
end;

destructor TFileMap.Destroy;
begin
  CloseMap;
  FMapStrings.Free;
  inherited Destroy;
end;

procedure TFileMap.Check(Status: LongInt; const What: string);
begin
  if Status <> FM_OK then
    raise EFileMapError.CreateStatus(Status, What);
end;

procedure TFileMap.RequireOpen(const What: string);
begin
  if FMap = nil then
    raise EFileMapError.CreateLocal(FM_E_NULL, What + ': the map is not open');
end;

procedure TFileMap.SetMapName(const Value: string);
begin
  if IsMapOpen then
    raise EFileMapError.CreateLocal(FM_E_INVALID_ARGUMENT, 'MapName: close the map first');
  FMapName := Value;
end;

procedure TFileMap.SetSize(Value: LongWord);
begin
  if IsMapOpen then
    raise EFileMapError.CreateLocal(FM_E_INVALID_ARGUMENT, 'Size: close the map first');
  if Value < FileMapMinSize then
    raise EFileMapError.CreateLocal(FM_E_INVALID_CAPACITY,
      Format('Size %d is below the minimum of %d bytes', [Value, FileMapMinSize]));
  FSize := Value;
end;

procedure TFileMap.SetMaxCapacity(Value: LongWord);
begin
  if IsMapOpen then
    raise EFileMapError.CreateLocal(FM_E_INVALID_ARGUMENT, 'MaxCapacity: close the map first');
  FMaxCapacity := Value;
end;

function TFileMap.GetMaxCapacity: LongWord;
var
  Max: PtrUInt;
begin
  if IsMapOpen then
  begin
    Max := 0;
    Check(fm_max_capacity(FMap, @Max), 'MaxCapacity');
    Result := Max;
  end
  else if FMaxCapacity = 0 then
    Result := FSize
  else
    Result := FMaxCapacity;
end;

function TFileMap.MaxCapacityStored: Boolean;
begin
  Result := FMaxCapacity <> 0;
end;

function TFileMap.GetCapacity: LongWord;
var
  Cap: PtrUInt;
begin
  if not IsMapOpen then
  begin
    Result := FSize;
    Exit;
  end;
  Cap := 0;
  Check(fm_capacity(FMap, @Cap), 'Capacity');
  Result := Cap;
end;

function TFileMap.GetIsMapOpen: Boolean;
begin
  Result := FMap <> nil;
end;

procedure TFileMap.OpenMap;
var
  Map: Pointer;
  Existed: Byte;
  CName: TFmBytes;
  Options: TFmOpenOptions;
begin
  if IsMapOpen then
    Exit;
  if fm_abi_version <> FileMapAbiVersion then
    raise EFileMapError.CreateLocal(FM_E_INCOMPATIBLE_VERSION,
      Format('OpenMap: the filemap library has C ABI version %d; this unit needs %d',
        [fm_abi_version, FileMapAbiVersion]));
  {$ifdef UNICODE}
  CName := UTF8Encode(FMapName);
  {$else}
  CName := FMapName;
  {$endif}
  Map := nil;
  FillChar(Options, SizeOf(Options), 0);
  Options.Size := SizeOf(Options);
  Options.Capacity := FSize;
  { 0: the capacity, as fm_open does. }
  Options.MaxCapacity := FMaxCapacity;
  Check(fm_open_ex(PAnsiChar(CName), @Options, @Map), 'OpenMap ' + FMapName);
  FMap := Map;
  try
    Existed := 0;
    Check(fm_existed_already(FMap, @Existed), 'OpenMap');
    FExistsAlready := Existed <> 0;
    Check(fm_id(FMap, @FId), 'OpenMap');
    if FExistsAlready then
      ReadMap
    else
      WriteMap;
    if FUseThread then
      FWatch := TFileMapWatchThread.Create(Self, FMap, FSeen);
  except
    CloseMap;
    raise;
  end;
end;

procedure TFileMap.CloseMap;
begin
  if FWatch <> nil then
  begin
    FWatch.Stop;
    { Changes it queued must not reach a closed (or freed) component. }
    TThread.RemoveQueuedEvents(FWatch);
    FreeAndNil(FWatch);
  end;
  if FMap <> nil then
  begin
    fm_close(FMap);
    FMap := nil;
  end;
end;

function TFileMap.ReadContent(out Stamp: TFmStamp): TFmBytes;
var
  Len: PtrUInt;
  Status: LongInt;
begin
  RequireOpen('ReadMap');
  Result := '';
  Len := 0;
  { Ask for the length, then read; retry if a writer grew it meanwhile. }
  repeat
    SetLength(Result, Len);
    if Len = 0 then
      Status := fm_read(FMap, nil, 0, @Len, @Stamp)
    else
      Status := fm_read(FMap, PByte(PAnsiChar(Result)), Len, @Len, @Stamp);
  until Status <> FM_E_BUFFER_TOO_SMALL;
  Check(Status, 'ReadMap');
  SetLength(Result, Len);
end;

procedure TFileMap.LoadContent(const Content: TFmBytes);
var
  Start, I: Integer;
begin
  FLoading := True;
  FMapStrings.BeginUpdate;
  try
    FMapStrings.Clear;
    if Length(Content) > 0 then
    begin
      Start := 1;
      for I := 1 to Length(Content) do
        if Content[I] = #10 then
        begin
          FMapStrings.Add(Line(Slice(Content, Start, I - Start)));
          Start := I + 1;
        end;
      FMapStrings.Add(Line(Slice(Content, Start, Length(Content) - Start + 1)));
    end;
  finally
    FMapStrings.EndUpdate;
    FLoading := False;
  end;
end;

procedure TFileMap.ReadMap;
var
  Stamp: TFmStamp;
  Content: TFmBytes;
begin
  Content := ReadContent(Stamp);
  FSeen := Stamp.Generation;
  LoadContent(Content);
end;

function TFileMap.JoinLines: TFmBytes;
var
  I: Integer;
begin
  Result := '';
  for I := 0 to FMapStrings.Count - 1 do
  begin
    if I > 0 then
      Result := Result + #10;
    {$ifdef UNICODE}
    Result := Result + UTF8Encode(FMapStrings[I]);
    {$else}
    Result := Result + FMapStrings[I];
    {$endif}
  end;
end;

procedure TFileMap.WriteMap;
var
  Content: TFmBytes;
  Gen: QWord;
begin
  RequireOpen('WriteMap');
  Content := JoinLines;
  Gen := 0;
  Check(fm_write(FMap, PByte(PAnsiChar(Content)), Length(Content), @Gen), 'WriteMap');
  FSeen := Gen;
end;

procedure TFileMap.Clear;
begin
  FLoading := True;
  try
    FMapStrings.Clear;
  finally
    FLoading := False;
  end;
  if IsMapOpen then
    WriteMap;
end;

function TFileMap.Lock: Boolean;
var
  Died: Byte;
begin
  RequireOpen('Lock');
  Died := 0;
  Check(fm_lock(FMap, @Died), 'Lock');
  Result := Died <> 0;
end;

procedure TFileMap.Unlock;
begin
  RequireOpen('Unlock');
  Check(fm_unlock(FMap), 'Unlock');
end;

procedure TFileMap.StringsChanged(Sender: TObject);
begin
  if FAutoSynchronize and not FLoading and IsMapOpen then
    WriteMap;
end;

function TFileMap.CheckChanges: Boolean;
var
  Now: QWord;
  Stamp: TFmStamp;
  Content: TFmBytes;
begin
  Result := False;
  if not IsMapOpen then
    Exit;
  Check(fm_generation(FMap, @Now), 'CheckChanges');
  if Now = FSeen then
    Exit;
  Content := ReadContent(Stamp);
  FSeen := Stamp.Generation;
  { Our own write (the latest one is ours): nothing to report. }
  if (Stamp.Writer.Pid = FId.Pid) and (Stamp.Writer.Handle = FId.Handle) then
    Exit;
  LoadContent(Content);
  Result := True;
  if Assigned(FOnChange) then
    FOnChange(Self);
end;

procedure TFileMap.ProcessChanges(TimeoutMs: Integer);
begin
  CheckSynchronize(TimeoutMs);
end;

end.
